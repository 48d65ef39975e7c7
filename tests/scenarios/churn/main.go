// Command churn creates and ends goroutines as fast as the CPUs allow, and can park many
// goroutines: the load of gotrace's overhead and census benchmarks (bench/bench_top.py).
//
//	-workers W   goroutines that each start -batch short-lived goroutines, wait for them,
//	             and start over (default GOMAXPROCS; 0: no churn)
//	-batch B     goroutines per batch (default 64)
//	-n N         goroutines parked forever on a channel receive, -depth frames deep, all
//	             started (and parked) before "ready"
//
// It prints "ready PORT PID" on stdout and serves on 127.0.0.1:PORT:
//
//	GET /stats            JSON: goroutines created by the churn so far, the rate over the
//	                      last full second, runtime.NumGoroutine, parked goroutines
//	GET /pause, /resume   stop and restart the churn (workers stay, blocked on a channel)
//	GET /debug/pprof/...  net/http/pprof
//
// With -report, it also prints "rate R/s goroutines N" on stdout every second.
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
	"sync"
	"sync/atomic"
	"time"
)

var (
	created  int64 // goroutines started by the churn
	lastRate int64 // created during the last full second
	parked   int64
	paused   int32
	gate     = make(chan struct{}) // closed while churning; replaced on pause
	gateMu   sync.Mutex
	never    = make(chan struct{})
	sinkVal  int64
)

//go:noinline
func task(wg *sync.WaitGroup) {
	wg.Done()
}

// currentGate is the channel a worker waits on while paused (closed when running).
func currentGate() chan struct{} {
	gateMu.Lock()
	defer gateMu.Unlock()
	return gate
}

//go:noinline
func worker(batch int) {
	var wg sync.WaitGroup
	for {
		if atomic.LoadInt32(&paused) != 0 {
			<-currentGate()
		}
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go task(&wg) // churn:go
		}
		wg.Wait()
		atomic.AddInt64(&created, int64(batch))
	}
}

//go:noinline
func parkedLeaf(started *sync.WaitGroup) {
	started.Done()
	<-never // churn:park
}

//go:noinline
func parkedFrame(depth int, started *sync.WaitGroup) {
	if depth <= 1 {
		parkedLeaf(started)
		return
	}
	parkedFrame(depth-1, started)
	atomic.AddInt64(&sinkVal, 1)
}

//go:noinline
func park(n, depth int) {
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go parkedFrame(depth, &started) // churn:park:go
	}
	started.Wait()
	atomic.StoreInt64(&parked, int64(n))
}

type stats struct {
	Created      int64 `json:"created"`
	Rate         int64 `json:"rate"`
	NumGoroutine int   `json:"numgoroutine"`
	Parked       int64 `json:"parked"`
	Paused       bool  `json:"paused"`
	Workers      int   `json:"workers"`
	Batch        int   `json:"batch"`
	GOMAXPROCS   int   `json:"gomaxprocs"`
}

func main() {
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "churning workers (0: no churn)")
	batch := flag.Int("batch", 64, "goroutines per batch")
	n := flag.Int("n", 0, "goroutines to park forever")
	depth := flag.Int("depth", 4, "frames of a parked goroutine's stack (its function's)")
	report := flag.Bool("report", false, "print the rate and NumGoroutine every second")
	flag.Parse()

	park(*n, *depth)
	close(gate)
	for i := 0; i < *workers; i++ {
		go worker(*batch)
	}
	go func() {
		prev := atomic.LoadInt64(&created)
		for range time.Tick(time.Second) {
			cur := atomic.LoadInt64(&created)
			atomic.StoreInt64(&lastRate, cur-prev)
			if *report {
				fmt.Printf("rate %d/s goroutines %d\n", cur-prev, runtime.NumGoroutine())
			}
			prev = cur
		}
	}()

	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(stats{
			Created: atomic.LoadInt64(&created), Rate: atomic.LoadInt64(&lastRate),
			NumGoroutine: runtime.NumGoroutine(), Parked: atomic.LoadInt64(&parked),
			Paused: atomic.LoadInt32(&paused) != 0, Workers: *workers, Batch: *batch,
			GOMAXPROCS: runtime.GOMAXPROCS(0),
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	http.HandleFunc("/pause", func(w http.ResponseWriter, r *http.Request) {
		gateMu.Lock()
		if atomic.LoadInt32(&paused) == 0 {
			gate = make(chan struct{})
			atomic.StoreInt32(&paused, 1)
		}
		gateMu.Unlock()
		time.Sleep(50 * time.Millisecond) // the batches in flight end
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/resume", func(w http.ResponseWriter, r *http.Request) {
		gateMu.Lock()
		if atomic.LoadInt32(&paused) != 0 {
			atomic.StoreInt32(&paused, 0)
			close(gate)
		}
		gateMu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d %d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}
