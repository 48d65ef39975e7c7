// Command contention makes goroutines wait in known ways and serves its own truth.
//
// It is the ground truth for `gotrace contention`. One load per process, chosen with -mode:
//
//	mutex      8 goroutines take one sync.Mutex and hold it ~1 ms each time
//	mutexread  8 readers holding a sync.Mutex while they read slowly, a rare writer
//	rwread     the same load on a sync.RWMutex, readers taking RLock
//	pingpong   two goroutines bounce a value over an unbuffered channel
//	prodcons   a producer faster than its consumer on a buffered channel
//	gosched    goroutines looping on runtime.Gosched
//	sched      GOMAXPROCS=1, 8 goroutines running 100 us then yielding: they queue
//	http       a net/http server (load it with wrk on 127.0.0.1)
//	idle       nothing
//
// It turns on Go's own block and mutex profiles (-blockrate, -mutexfrac; 1 = every event)
// and serves on 127.0.0.1:
//
//	GET /debug/pprof/block, /debug/pprof/mutex   net/http/pprof
//	GET /blockprof the block profile (debug=1 text) after a line "mono_ns N": the
//	               CLOCK_MONOTONIC instant it was taken, the clock of gotrace's window
//	GET /metrics   runtime/metrics: /sched/latencies:seconds and the GC pause histogram
//	               as JSON {"name": {"buckets": [...], "counts": [...]}},
//	               /sync/mutex/wait/total:seconds (Go 1.20+) as a number, plus "now_ns"
//	               and "mono_ns" (CLOCK_MONOTONIC, just before the read)
//	GET /ops       operations done so far by the load (round trips, items, requests)
//	GET /setrate?block=N&mutex=N   change the profile rates (benchmarks)
//	GET /hello     the http mode's request handler
//
// Ready: it prints "ready PORT PID" on stdout and writes PORT to -port-file.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// monoNow is CLOCK_MONOTONIC in nanoseconds: the clock gotrace reports its window in.
func monoNow() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

var ops uint64

// spin keeps the CPU busy for about D without leaving the goroutine.
//
//go:noinline
func spin(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
	}
}

//go:noinline
func mutexWorker(mu *sync.Mutex, hold time.Duration) {
	for {
		mu.Lock() // contention:mutex
		spin(hold)
		mu.Unlock() // contention:unlock
		atomic.AddUint64(&ops, 1)
	}
}

// The read-heavy load: readers hold the lock while they read slowly (as if reading from
// a device, without using a CPU: the comparison must not depend on CPU saturation), then
// pause; a writer takes it now and then. The same load runs on a sync.Mutex (mutexread)
// and on a sync.RWMutex (rwread).
var shared [64]int

const (
	readTime   = 200 * time.Microsecond
	readPause  = 100 * time.Microsecond
	writeEvery = 50 * time.Millisecond
)

//go:noinline
func slowRead() int {
	time.Sleep(readTime)
	return shared[0]
}

//go:noinline
func mutexReader(mu *sync.Mutex) {
	for {
		mu.Lock() // contention:mutexread
		slowRead()
		mu.Unlock()
		atomic.AddUint64(&ops, 1)
		time.Sleep(readPause)
	}
}

//go:noinline
func rwReader(mu *sync.RWMutex) {
	for {
		mu.RLock() // contention:rwread
		slowRead()
		mu.RUnlock()
		atomic.AddUint64(&ops, 1)
		time.Sleep(readPause)
	}
}

//go:noinline
func mutexWriter(mu *sync.Mutex) {
	for {
		time.Sleep(writeEvery)
		mu.Lock() // contention:mutexwrite
		shared[0]++
		mu.Unlock()
	}
}

//go:noinline
func rwWriter(mu *sync.RWMutex) {
	for {
		time.Sleep(writeEvery)
		mu.Lock() // contention:rwwrite
		shared[0]++
		mu.Unlock()
	}
}

//go:noinline
func pinger(ping, pong chan int) {
	for i := 0; ; i++ {
		ping <- i // contention:ping
		<-pong    // contention:pingwait
		atomic.AddUint64(&ops, 1)
	}
}

//go:noinline
func ponger(ping, pong chan int) {
	for {
		v := <-ping // contention:pong
		pong <- v   // contention:pongsend
	}
}

//go:noinline
func producer(ch chan int) {
	for i := 0; ; i++ {
		ch <- i // contention:produce
	}
}

//go:noinline
func consumer(ch chan int) {
	for {
		<-ch // contention:consume
		spin(time.Millisecond)
		atomic.AddUint64(&ops, 1)
	}
}

//go:noinline
func yielder() {
	for {
		runtime.Gosched() // contention:gosched
		atomic.AddUint64(&ops, 1)
	}
}

// A goroutine of the sched load (GOMAXPROCS=1): runs ~100 us, then yields the only P to
// the others and queues for it again.
//
//go:noinline
func cpuBurner() {
	for {
		spin(100 * time.Microsecond)
		atomic.AddUint64(&ops, 1)
		runtime.Gosched() // contention:sched
	}
}

func hello(w http.ResponseWriter, r *http.Request) {
	atomic.AddUint64(&ops, 1)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "hello %d\n", len(r.URL.Path))
}

var metricNames = []string{"/sched/latencies:seconds", "/gc/pauses:seconds",
	"/sync/mutex/wait/total:seconds"}

func serveMetrics(w http.ResponseWriter, r *http.Request) {
	samples := make([]metrics.Sample, len(metricNames))
	for i := range samples {
		samples[i].Name = metricNames[i]
	}
	mono := monoNow()
	metrics.Read(samples)
	out := map[string]interface{}{"mono_ns": mono}
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindFloat64 {
			out[s.Name] = s.Value.Float64()
		}
		if s.Value.Kind() != metrics.KindFloat64Histogram {
			continue
		}
		h := s.Value.Float64Histogram()
		b := make([]interface{}, len(h.Buckets))
		for i, v := range h.Buckets {
			switch {
			case math.IsInf(v, -1):
				b[i] = "-Inf"
			case math.IsInf(v, 1):
				b[i] = "+Inf"
			default:
				b[i] = v
			}
		}
		out[s.Name] = map[string]interface{}{"buckets": b, "counts": h.Counts}
	}
	out["now_ns"] = time.Now().UnixNano()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func main() {
	mode := flag.String("mode", "idle", "load: mutex, mutexread, rwread, pingpong, prodcons, gosched, sched, http, idle")
	portFile := flag.String("port-file", "", "write the HTTP port here when ready")
	blockRate := flag.Int("blockrate", 1, "runtime.SetBlockProfileRate (0: off)")
	mutexFrac := flag.Int("mutexfrac", 1, "runtime.SetMutexProfileFraction (0: off)")
	workers := flag.Int("workers", 8, "goroutines of the mutex, mutexread/rwread, gosched and sched loads")
	gcEvery := flag.Duration("gc", 0, "also run runtime.GC() this often (GC pauses)")
	flag.Parse()

	runtime.SetBlockProfileRate(*blockRate)
	runtime.SetMutexProfileFraction(*mutexFrac)

	switch *mode {
	case "mutex":
		var mu sync.Mutex
		for i := 0; i < *workers; i++ {
			go mutexWorker(&mu, time.Millisecond)
		}
	case "mutexread":
		var mu sync.Mutex
		for i := 0; i < *workers; i++ {
			go mutexReader(&mu)
		}
		go mutexWriter(&mu)
	case "rwread":
		var mu sync.RWMutex
		for i := 0; i < *workers; i++ {
			go rwReader(&mu)
		}
		go rwWriter(&mu)
	case "pingpong":
		ping, pong := make(chan int), make(chan int)
		go pinger(ping, pong)
		go ponger(ping, pong)
	case "prodcons":
		ch := make(chan int, 16)
		go producer(ch)
		go consumer(ch)
	case "gosched":
		for i := 0; i < *workers; i++ {
			go yielder()
		}
	case "sched":
		runtime.GOMAXPROCS(1)
		for i := 0; i < *workers; i++ {
			go cpuBurner()
		}
	case "http":
		http.HandleFunc("/hello", hello)
	case "idle":
	default:
		fmt.Fprintf(os.Stderr, "contention: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	if *gcEvery > 0 {
		go func() {
			for {
				time.Sleep(*gcEvery)
				runtime.GC()
			}
		}()
	}
	http.HandleFunc("/metrics", serveMetrics)
	http.HandleFunc("/blockprof", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "mono_ns %d\n", monoNow())
		pprof.Lookup("block").WriteTo(w, 1)
	})
	// Benchmarks switch Go's own profiles on and off in the same process (same run).
	http.HandleFunc("/setrate", func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("block"); v != "" {
			n, _ := strconv.Atoi(v)
			runtime.SetBlockProfileRate(n)
		}
		if v := r.URL.Query().Get("mutex"); v != "" {
			n, _ := strconv.Atoi(v)
			runtime.SetMutexProfileFraction(n)
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/ops", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", atomic.LoadUint64(&ops))
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "contention:", err)
		os.Exit(1)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "contention:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("ready %d %d\n", port, os.Getpid())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		http.Serve(ln, nil)
	}()
	wg.Wait()
}
