// Command heap allocates memory in known ways and serves its own truth.
//
// It is the ground truth for `gotrace heap`. One load per process, chosen with -mode:
//
//	mapcache  a global map used as a cache, growing without eviction (~12 MB/s retained)
//	subslice  64 KiB buffers of which only a 16-byte sub-slice is kept, in a map (~12 MB/s)
//	pool      sync.Pool objects put back holding their maps, which keep growing (~12 MB/s);
//	          GOMAXPROCS=1, so that the pool's per-P slot always hands the same session back
//	          (with several Ps, a session left in another P's slot is dropped at a GC)
//	churn     a bytes.Buffer per request, ~20 MB/s allocated, nothing retained
//	steady    a fixed working set built at start, then short-lived garbage only (the control)
//	spin      as many bytes.Buffer requests as 2 goroutines can do, counted (benchmarks)
//	stacks    MemProfileRate=1 and one allocation from each of -n distinct call stacks
//	idle      nothing
//
// The retaining modes keep their rates under CPU load: each tick catches up with the
// number of operations the elapsed time asks for. Every mode but churn, spin, stacks and
// idle also runs gcDriver, short-lived garbage (~1 MB/s). -gogc (default 25) sets GOGC (-1:
// off, then only forced cycles happen); -gc D also calls runtime.GC() every D; -rate N sets
// runtime.MemProfileRate to N first thing (0: the program turns the runtime's sampling off).
//
// It serves on 127.0.0.1:
//
//	GET /memstats           runtime.ReadMemStats as JSON, plus "now_ns", "ops", and the
//	                        runtime/metrics "/gc/heap/live:bytes" (1.21+) and
//	                        "/gc/heap/goal:bytes" as "metric_heap_live" and "metric_heap_goal"
//	GET /debug/pprof/heap   net/http/pprof (not in the -tags noprof build, where the linker
//	                        disables memory profiling because runtime.MemProfile is unused)
//	GET /gc                 runtime.GC()
//	GET /work               one bytes.Buffer request (wrk load)
//	GET /allocs?n=N&size=S  N allocations of S bytes on the handler's goroutine, then
//	                        {"cpu_ns": the process's CPU time meanwhile (user + system:
//	                        a uprobe's trap is system time of the traced thread)}
//
// Ready: it prints "ready PORT PID" on stdout once the load runs.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	sink   []byte
	sinkMu sync.Mutex
	ops    int64 // requests done by spin and /work
)

// pace calls fn n times per period d on average, forever: each tick runs as many calls
// as the time elapsed since the start asks for, so a late tick catches up.
func pace(d time.Duration, n int, fn func(i int)) {
	i := 0
	start := time.Now()
	t := time.NewTicker(d)
	for range t.C {
		want := int(time.Since(start)/d) * n
		for ; i < want; i++ {
			fn(i)
		}
	}
}

// ---------------------------------------------------------------- mapcache

var cache = map[string][]byte{}
var cacheMu sync.Mutex

//go:noinline
func cacheAdd(i int) {
	v := make([]byte, 4096) // heap:mapcache
	v[0] = byte(i)
	cacheMu.Lock()
	cache["key-"+strconv.Itoa(i)] = v
	cacheMu.Unlock()
}

// ---------------------------------------------------------------- subslice

var headers = map[int][]byte{}
var headersMu sync.Mutex

//go:noinline
func readMessage(i int) []byte {
	buf := make([]byte, 64<<10) // heap:subslice
	for k := 0; k < 64; k++ {
		buf[k] = byte(i + k)
	}
	return buf
}

//go:noinline
func keepHeader(i int) {
	msg := readMessage(i)
	headersMu.Lock()
	headers[i] = msg[:16] // pins the whole 64 KiB buffer
	headersMu.Unlock()
}

// ---------------------------------------------------------------- pool

type session struct {
	seen map[int][]byte
}

var sessions = sync.Pool{New: func() interface{} { return newSession() }}

//go:noinline
func newSession() *session {
	return &session{seen: make(map[int][]byte)}
}

//go:noinline
func poolWork(i int) {
	s := sessions.Get().(*session)
	s.seen[i] = make([]byte, 2048) // heap:pool
	sessions.Put(s)                // put back without clearing its map
}

// ---------------------------------------------------------------- churn

//go:noinline
func handleRequest(i int) int {
	var b bytes.Buffer
	chunk := [1024]byte{byte(i)}
	for k := 0; k < 10; k++ {
		b.Write(chunk[:]) // heap:churn
	}
	return b.Len()
}

// ---------------------------------------------------------------- steady

var working [][]byte

//go:noinline
func buildWorkingSet() {
	for k := 0; k < 1024; k++ {
		working = append(working, make([]byte, 8192)) // heap:steady
	}
}

// gcDriver makes short-lived garbage: GC cycles keep coming, nothing is retained.
//
//go:noinline
func gcDriver(i int) {
	b := make([]byte, 32<<10) // heap:gcdriver
	b[i%len(b)] = 1
	sinkMu.Lock()
	sink = b
	sinkMu.Unlock()
}

// ---------------------------------------------------------------- stacks

// walk recurses LEVEL times, taking call site A or B by the bits of PATH, so that each
// PATH allocates from its own call stack (one frame per level: stacks stay short enough
// for every Go's profile depth limit).
//
//go:noinline
func walk(path uint32, level int) {
	if level == 0 {
		sinkMu.Lock()
		sink = make([]byte, 16) // heap:stacks
		sinkMu.Unlock()
		return
	}
	if path&1 == 0 {
		walk(path>>1, level-1)
	} else {
		walk(path>>1, level-1)
	}
}

// ---------------------------------------------------------------- allocs

//go:noinline
func allocLoop(n, size int) {
	for i := 0; i < n; i++ {
		b := make([]byte, size) // heap:allocs
		sinkMu.Lock()
		sink = b
		sinkMu.Unlock()
	}
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func serveAllocs(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	size, _ := strconv.Atoi(r.URL.Query().Get("size"))
	c0 := cpuNs()
	allocLoop(n, size)
	fmt.Fprintf(w, "{\"cpu_ns\": %d}\n", cpuNs()-c0)
}

// ---------------------------------------------------------------- truth

func serveMemStats(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := json.Marshal(&ms)
	var out map[string]interface{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // uint64s (PauseEnd, NextGC) stay exact
	d.Decode(&out)
	out["now_ns"] = time.Now().UnixNano()
	out["pprof_linked"] = pprofLinked
	out["mem_profile_rate"] = runtime.MemProfileRate
	out["ops"] = atomic.LoadInt64(&ops)
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(m)
	for k, name := range []string{"metric_heap_live", "metric_heap_goal"} {
		if m[k].Value.Kind() == metrics.KindUint64 {
			out[name] = m[k].Value.Uint64()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func main() {
	mode := flag.String("mode", "idle", "load: mapcache, subslice, pool, churn, steady, spin, stacks, idle")
	gogc := flag.Int("gogc", 25, "debug.SetGCPercent")
	gcEvery := flag.Duration("gc", 0, "also run runtime.GC() this often (forced cycles)")
	n := flag.Int("n", 50000, "stacks mode: distinct allocation stacks")
	rate := flag.Int("rate", -1, "runtime.MemProfileRate (-1: leave it)")
	flag.Parse()

	if *rate >= 0 {
		runtime.MemProfileRate = *rate
	}

	if *mode == "stacks" {
		runtime.MemProfileRate = 1
	}
	debug.SetGCPercent(*gogc)
	driver := true
	switch *mode {
	case "mapcache":
		go pace(time.Millisecond, 3, cacheAdd)
	case "subslice":
		go pace(5*time.Millisecond, 1, keepHeader)
	case "pool":
		runtime.GOMAXPROCS(1)
		go pace(time.Millisecond, 6, poolWork)
	case "churn":
		// ~100 requests of ~20 KB allocated (10 KB of data, the buffer grows by doubling)
		// every 20 ms.
		go pace(20*time.Millisecond, 50, func(i int) { handleRequest(i) })
		driver = false
	case "steady":
		buildWorkingSet()
	case "spin":
		for g := 0; g < 2; g++ {
			go func() {
				for i := 0; ; i++ {
					handleRequest(i)
					atomic.AddInt64(&ops, 1)
				}
			}()
		}
		driver = false
	case "stacks":
		for p := 0; p < *n; p++ {
			walk(uint32(p), 16)
		}
		driver = false
	case "idle":
		driver = false
	default:
		fmt.Fprintf(os.Stderr, "heap: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	if driver {
		go pace(32*time.Millisecond, 1, gcDriver)
	}
	if *gcEvery > 0 {
		go func() {
			for {
				time.Sleep(*gcEvery)
				runtime.GC()
			}
		}()
	}
	http.HandleFunc("/memstats", serveMemStats)
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, handleRequest(int(atomic.AddInt64(&ops, 1))))
	})
	http.HandleFunc("/allocs", serveAllocs)
	http.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "heap:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d %d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	http.Serve(ln, nil)
}
