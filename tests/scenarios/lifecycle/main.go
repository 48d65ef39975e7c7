// Command lifecycle creates goroutines from known sites, at a known rate, and serves its
// own truth: the ground truth for gotrace's goroutine lifecycle tracing.
//
// Every `go` statement sits alone in its own function, so a creation site is known by
// the function that holds it:
//
//	main.spawnA      goroutines that exit at once
//	main.spawnB      goroutines that park on a channel receive until /release
//	main.spawnC      parents that start two children each (main.cParent) and exit
//	main.cParent     children that park in a select until /release; each records its
//	                 own goid and its parent's (from runtime.Stack headers)
//	main.churnWorker goroutine churn: as many short-lived goroutines as the CPUs allow
//
// HTTP on 127.0.0.1 (port in the "ready PORT PID" line on stdout):
//
//	GET /run?a=N&b=N&c=N&rate=R   create them (R goroutines/s per site, 0 = no pause);
//	                              returns once A and C parents exited and B/C children parked
//	GET /release                  let B goroutines and C children exit; returns once they did
//	GET /churn?seconds=S          churn for S seconds in GOMAXPROCS workers, in the background;
//	                              returns the run's index
//	GET /churnstop?idx=N          end churn run N now; returns once its workers stopped
//	GET /truth                    JSON: created and exited per site, children's (goid,
//	                              parent) pairs, goids of parked goroutines, churn rates,
//	                              runtime.NumGoroutine
//	GET /numgoroutine             runtime.NumGoroutine()
//	GET /debug/pprof/...          net/http/pprof
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type truth struct {
	mu        sync.Mutex
	Created   map[string]int64    `json:"created"`
	Exited    map[string]int64    `json:"exited"`
	Children  [][2]int64          `json:"children"` // (goid, parent goid)
	ParkedB   []int64             `json:"parked_b"`
	Stacks    map[string][]string `json:"stacks"` // site -> functions on the creator's stack
	ChurnRuns []churnRun          `json:"churn"`
}

type churnRun struct {
	Seconds float64 `json:"seconds"`
	Created int64   `json:"created"`
	Rates   []int64 `json:"rates"` // goroutines created per 100 ms interval
	Done    bool    `json:"done"`
}

var (
	tr = truth{Created: map[string]int64{}, Exited: map[string]int64{},
		Stacks: map[string][]string{}}

	holdB = make(chan struct{})
	holdC = make(chan struct{})
	never = make(chan struct{})
	liveB sync.WaitGroup
	liveC sync.WaitGroup

	churned    int64
	churnStops = map[int]*int32{} // by run index, under tr.mu
	churnDone  = map[int]chan struct{}{}
)

func count(m map[string]int64, site string) {
	tr.mu.Lock()
	m[site]++
	tr.mu.Unlock()
}

// goid parses "goroutine N [...]" from this goroutine's own stack dump.
func goid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := buf[:n]
	if len(b) < 11 || string(b[:10]) != "goroutine " {
		return -1
	}
	var id int64
	for _, c := range b[10:] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

// stack records the functions on the caller's stack (the creator of site's goroutines),
// innermost first, as runtime.CallersFrames gives them.
func stack(site string) {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var fns []string
	for {
		f, more := frames.Next()
		fns = append(fns, f.Function)
		if !more {
			break
		}
	}
	tr.mu.Lock()
	tr.Stacks[site] = fns
	tr.mu.Unlock()
}

func pause(rate int) {
	if rate > 0 {
		time.Sleep(time.Second / time.Duration(rate))
	}
}

//go:noinline
func taskA(wg *sync.WaitGroup) {
	count(tr.Exited, "main.spawnA")
	wg.Done()
}

//go:noinline
func spawnA(n, rate int) {
	stack("main.spawnA")
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		count(tr.Created, "main.spawnA")
		go taskA(&wg)
		pause(rate)
	}
	wg.Wait()
}

//go:noinline
func taskB(started *sync.WaitGroup) {
	id := goid()
	tr.mu.Lock()
	tr.ParkedB = append(tr.ParkedB, id)
	tr.mu.Unlock()
	started.Done()
	<-holdB
	count(tr.Exited, "main.spawnB")
	liveB.Done()
}

//go:noinline
func spawnB(n, rate int) {
	var started sync.WaitGroup
	started.Add(n)
	liveB.Add(n)
	for i := 0; i < n; i++ {
		count(tr.Created, "main.spawnB")
		go taskB(&started)
		pause(rate)
	}
	started.Wait()
}

//go:noinline
func child(parent int64, started *sync.WaitGroup) {
	id := goid()
	tr.mu.Lock()
	tr.Children = append(tr.Children, [2]int64{id, parent})
	tr.mu.Unlock()
	started.Done()
	select {
	case <-holdC:
	case <-never:
	}
	count(tr.Exited, "main.cParent")
	liveC.Done()
}

//go:noinline
func cParent(started *sync.WaitGroup, done *sync.WaitGroup) {
	me := goid()
	for i := 0; i < 2; i++ {
		count(tr.Created, "main.cParent")
		go child(me, started)
	}
	count(tr.Exited, "main.spawnC")
	done.Done()
}

//go:noinline
func spawnC(n, rate int) {
	var started, done sync.WaitGroup
	started.Add(2 * n)
	done.Add(n)
	liveC.Add(2 * n)
	for i := 0; i < n; i++ {
		count(tr.Created, "main.spawnC")
		go cParent(&started, &done)
		pause(rate)
	}
	done.Wait()
	started.Wait()
}

//go:noinline
func churnTask(wg *sync.WaitGroup) {
	wg.Done()
}

//go:noinline
func churnWorker(stop *int32) {
	var wg sync.WaitGroup
	const batch = 64
	for atomic.LoadInt32(stop) == 0 {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go churnTask(&wg)
		}
		wg.Wait()
		atomic.AddInt64(&churned, batch)
	}
}

func churn(seconds float64, idx int, stop *int32, done chan struct{}) {
	var workers sync.WaitGroup
	n := runtime.GOMAXPROCS(0)
	start := atomic.LoadInt64(&churned)
	for i := 0; i < n; i++ {
		workers.Add(1)
		go func() {
			churnWorker(stop)
			workers.Done()
		}()
	}
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	last := start
	for time.Now().Before(deadline) && atomic.LoadInt32(stop) == 0 {
		time.Sleep(100 * time.Millisecond)
		cur := atomic.LoadInt64(&churned)
		tr.mu.Lock()
		tr.ChurnRuns[idx].Rates = append(tr.ChurnRuns[idx].Rates, cur-last)
		tr.mu.Unlock()
		last = cur
	}
	atomic.StoreInt32(stop, 1)
	workers.Wait()
	tr.mu.Lock()
	tr.ChurnRuns[idx].Created = atomic.LoadInt64(&churned) - start
	tr.ChurnRuns[idx].Done = true
	tr.mu.Unlock()
	close(done)
}

func intArg(r *http.Request, name string) int {
	v, _ := strconv.Atoi(r.URL.Query().Get(name))
	return v
}

func main() {
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle:", err)
		os.Exit(1)
	}
	var runMu sync.Mutex
	http.HandleFunc("/run", func(w http.ResponseWriter, r *http.Request) {
		runMu.Lock()
		defer runMu.Unlock()
		rate := intArg(r, "rate")
		spawnA(intArg(r, "a"), rate)
		spawnB(intArg(r, "b"), rate)
		spawnC(intArg(r, "c"), rate)
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		runMu.Lock()
		defer runMu.Unlock()
		close(holdB)
		close(holdC)
		liveB.Wait()
		liveC.Wait()
		holdB = make(chan struct{})
		holdC = make(chan struct{})
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/churn", func(w http.ResponseWriter, r *http.Request) {
		s, _ := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		tr.mu.Lock()
		tr.ChurnRuns = append(tr.ChurnRuns, churnRun{Seconds: s})
		idx := len(tr.ChurnRuns) - 1
		stop, done := new(int32), make(chan struct{})
		churnStops[idx], churnDone[idx] = stop, done
		tr.mu.Unlock()
		go churn(s, idx, stop, done)
		fmt.Fprintln(w, idx)
	})
	http.HandleFunc("/churnstop", func(w http.ResponseWriter, r *http.Request) {
		idx := intArg(r, "idx")
		tr.mu.Lock()
		stop, done := churnStops[idx], churnDone[idx]
		tr.mu.Unlock()
		if stop == nil {
			http.Error(w, "no such churn run", 404)
			return
		}
		atomic.StoreInt32(stop, 1)
		<-done
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/truth", func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		b, err := json.Marshal(struct {
			*truth
			NumGoroutine int `json:"numgoroutine"`
		}{&tr, runtime.NumGoroutine()})
		tr.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(b)
	})
	http.HandleFunc("/numgoroutine", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, runtime.NumGoroutine())
	})
	go func() {
		if err := http.Serve(ln, nil); err != nil {
			fmt.Fprintln(os.Stderr, "lifecycle:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("ready %d %d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	select {}
}
