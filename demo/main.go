// The gotrace demo service: a small HTTP server on 127.0.0.1 with the classic
// Go pitfalls built in, so that gotrace has something real to show.
//
//	/leak      starts a goroutine that blocks forever on a channel nobody sends to
//	/cache     stores 64 KiB in a global map that never evicts
//	/churn     allocates and drops a 1 MiB buffer
//	/lock      holds a global mutex for 2 ms
//	/stats     prints the runtime's own view (goroutines, heap, GC)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var (
	cacheMu sync.Mutex
	cache   = map[int][]byte{}
	nextKey int

	hot sync.Mutex
)

func leak(w http.ResponseWriter, r *http.Request) {
	ch := make(chan int)
	go func() {
		<-ch // nobody ever sends: this goroutine is stuck for good
	}()
	fmt.Fprintln(w, "leaked one goroutine")
}

func fill(w http.ResponseWriter, r *http.Request) {
	cacheMu.Lock()
	nextKey++
	cache[nextKey] = make([]byte, 64<<10)
	n := len(cache)
	cacheMu.Unlock()
	fmt.Fprintf(w, "cache entries: %d\n", n)
}

func churn(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	b.Grow(1 << 20)
	b.WriteString("churn")
	fmt.Fprintf(w, "allocated %d bytes\n", b.Cap())
}

func lock(w http.ResponseWriter, r *http.Request) {
	hot.Lock()
	time.Sleep(2 * time.Millisecond)
	hot.Unlock()
	fmt.Fprintln(w, "locked")
}

func stats(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "goroutines %d\nheap_alloc %d\nnum_gc %d\npause_total_ns %d\n",
		runtime.NumGoroutine(), ms.HeapAlloc, ms.NumGC, ms.PauseTotalNs)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	portFile := flag.String("port-file", "", "write the chosen port here once listening")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/leak", leak)
	mux.HandleFunc("/cache", fill)
	mux.HandleFunc("/churn", churn)
	mux.HandleFunc("/lock", lock)
	mux.HandleFunc("/stats", stats)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("demo service on 127.0.0.1:%d (pid %d)", port, os.Getpid())
	log.Fatal(http.Serve(ln, mux))
}
