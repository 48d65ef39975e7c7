// Command leaky parks goroutines forever in known places and serves its own truth.
//
// It is the ground truth for gotrace's goroutine census: every group of goroutines
// blocks in its own function, on its own line, with a known wait reason, and the
// program reports runtime.NumGoroutine() and its pprof goroutine profile itself:
//
//	GET /numgoroutine               runtime.NumGoroutine() as a decimal number
//	GET /debug/pprof/goroutine?debug=1|2   net/http/pprof
//
// Once every goroutine is parked it prints "ready PORT PID" on stdout (and writes PORT
// to -port-file when given), then serves on 127.0.0.1 until killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var (
	neverCh   = make(chan int)
	neverSend = make(chan int)
	neverA    = make(chan int)
	neverB    = make(chan string)
	neverWG   sync.WaitGroup
	heldMu    sync.Mutex
)

//go:noinline
func blockRecv(started *sync.WaitGroup) {
	started.Done()
	<-neverCh // leaky:chanrecv
}

//go:noinline
func blockSend(started *sync.WaitGroup) {
	started.Done()
	neverSend <- 1 // leaky:chansend
}

//go:noinline
func blockSelect(started *sync.WaitGroup) {
	started.Done()
	select { // leaky:select
	case <-neverA:
	case <-neverB:
	}
}

//go:noinline
func blockSelectNoCases(started *sync.WaitGroup) {
	started.Done()
	select {} // leaky:selectnocases
}

//go:noinline
func blockWaitGroup(started *sync.WaitGroup) {
	started.Done()
	neverWG.Wait() // leaky:waitgroup
}

//go:noinline
func blockMutex(started *sync.WaitGroup) {
	started.Done()
	heldMu.Lock() // leaky:mutex
}

//go:noinline
func blockSleep(started *sync.WaitGroup) {
	started.Done()
	time.Sleep(24 * time.Hour) // leaky:sleep
}

// spawn starts n goroutines running fn and waits until each has started.
func spawn(n int, fn func(*sync.WaitGroup)) {
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go fn(&started) // leaky:spawn
	}
	started.Wait()
}

func main() {
	nRecv := flag.Int("recv", 100, "goroutines blocked on a channel receive")
	nSend := flag.Int("send", 0, "goroutines blocked on a channel send")
	nSelect := flag.Int("select", 50, "goroutines blocked in a select that never fires")
	nNoCases := flag.Int("selectnc", 20, "goroutines blocked in select {}")
	nWG := flag.Int("wg", 30, "goroutines blocked in sync.WaitGroup.Wait")
	nMutex := flag.Int("mutex", 0, "goroutines blocked in sync.Mutex.Lock")
	nSleep := flag.Int("sleep", 10, "goroutines sleeping for a day")
	churn := flag.Int("churn", 0, "goroutines that keep starting short-lived goroutines")
	portFile := flag.String("port-file", "", "write the HTTP port there")
	flag.Parse()

	neverWG.Add(1)
	heldMu.Lock()
	spawn(*nRecv, blockRecv)
	spawn(*nSend, blockSend)
	spawn(*nSelect, blockSelect)
	spawn(*nNoCases, blockSelectNoCases)
	spawn(*nWG, blockWaitGroup)
	spawn(*nMutex, blockMutex)
	spawn(*nSleep, blockSleep)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaky:", err)
		os.Exit(1)
	}
	http.HandleFunc("/numgoroutine", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, runtime.NumGoroutine())
	})
	// /exec replaces the program with sleep(1), same PID: a tracer must notice.
	http.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "exec")
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
		if err := syscall.Exec("/bin/sleep", []string{"sleep", "60"}, os.Environ()); err != nil {
			fmt.Fprintln(os.Stderr, "leaky: exec:", err)
		}
	})
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		if err := http.Serve(ln, nil); err != nil {
			fmt.Fprintln(os.Stderr, "leaky:", err)
			os.Exit(1)
		}
	}()

	// Started is not parked: wait until the goroutines have reached their blocking
	// call (runtime.Gosched lets them run; a 100k run needs a moment).
	want := *nRecv + *nSend + *nSelect + *nNoCases + *nWG + *nMutex + *nSleep
	for i := 0; i < 100; i++ {
		if parked(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < *churn; i++ {
		go churnLoop()
	}
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "leaky:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("ready %d %d\n", port, os.Getpid())
	select {} // leaky:main
}

// churnLoop starts goroutines that exit at once, forever: the census must read a
// list that changes under it.
func churnLoop() {
	var wg sync.WaitGroup
	for {
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() { // leaky:churn
				wg.Done()
			}()
		}
		wg.Wait()
		time.Sleep(100 * time.Microsecond)
	}
}

// parked reports whether at least want goroutines are blocked (not runnable or running),
// judged from the runtime's own stack dump headers.
func parked(want int) bool {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	blocked := 0
	for _, line := range splitLines(buf) {
		if len(line) > 10 && string(line[:10]) == "goroutine " && !contains(line, "[running]") &&
			!contains(line, "[runnable]") {
			blocked++
		}
	}
	return blocked >= want
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
