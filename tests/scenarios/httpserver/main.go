// Command httpserver is a small net/http server for load tests with wrk on 127.0.0.1.
//
//	GET /hello            "hello, world" (the request measured by benchmarks)
//	GET /json             a small JSON document, encoded per request
//	GET /numgoroutine     runtime.NumGoroutine()
//	GET /debug/pprof/...  net/http/pprof
//
// It prints "ready PORT PID" on stdout and serves on 127.0.0.1 (-addr to change).
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
	"sync/atomic"
)

var requests uint64

func hello(w http.ResponseWriter, r *http.Request) {
	atomic.AddUint64(&requests, 1)
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("hello, world\n"))
}

func jsonDoc(w http.ResponseWriter, r *http.Request) {
	atomic.AddUint64(&requests, 1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]interface{}{
		"path": r.URL.Path, "requests": atomic.LoadUint64(&requests), "ok": true,
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	http.HandleFunc("/hello", hello)
	http.HandleFunc("/json", jsonDoc)
	http.HandleFunc("/numgoroutine", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, runtime.NumGoroutine())
	})
	http.HandleFunc("/requests", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, atomic.LoadUint64(&requests))
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d %d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}
