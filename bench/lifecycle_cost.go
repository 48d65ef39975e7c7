// SPDX-License-Identifier: MIT

// lifecycle_cost drives the Go runtime functions gotrace's lifecycle probes sit on, on
// command, so that bench_lifecycle.py can time them with and without a probe attached.
//
// Commands, one per line on stdin; each answers one line on stdout:
//
//	cycle N    N times, on one P: go f(); <-ch (f sends on ch). Each iteration calls
//	           runtime.newproc1, runtime.gopark (main waits), runtime.ready (f wakes
//	           it) and runtime.goexit1 (f ends) exactly once.
//	           -> "cycle n=N cpu_ns=C wall_ns=W"   (process CPU time, user + system:
//	           the kernel's uprobe work is system time of the probed threads)
//	churn S    S seconds of goroutine churn on every P: batches of 64 goroutines that
//	           only call wg.Done, in GOMAXPROCS workers.
//	           -> "churn n=GOROUTINES cpu_ns=C wall_ns=W"
//	quit       exit
//
// It prints "ready PID" first.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

//go:noinline
func sender(ch chan struct{}) {
	ch <- struct{}{}
}

//go:noinline
func cycle(n int) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	ch := make(chan struct{})
	for i := 0; i < n; i++ {
		go sender(ch)
		<-ch
	}
}

//go:noinline
func churnTask(wg *sync.WaitGroup) {
	wg.Done()
}

//go:noinline
func churnWorker(stop *int32, count *int64) {
	var wg sync.WaitGroup
	const batch = 64
	for atomic.LoadInt32(stop) == 0 {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go churnTask(&wg)
		}
		wg.Wait()
		atomic.AddInt64(count, batch)
	}
}

func churn(d time.Duration) int64 {
	var stop int32
	var count int64
	var workers sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		workers.Add(1)
		go func() {
			churnWorker(&stop, &count)
			workers.Done()
		}()
	}
	time.Sleep(d)
	atomic.StoreInt32(&stop, 1)
	workers.Wait()
	return count
}

func main() {
	fmt.Printf("ready %d\n", os.Getpid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "quit" {
			return
		}
		if len(f) != 2 {
			fmt.Println("error: usage: cycle N | churn SECONDS | quit")
			continue
		}
		cpu0, t0 := processCPU(), time.Now()
		var n int64
		switch f[0] {
		case "cycle":
			v, err := strconv.Atoi(f[1])
			if err != nil {
				fmt.Println("error:", err)
				continue
			}
			cycle(v)
			n = int64(v)
		case "churn":
			s, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				fmt.Println("error:", err)
				continue
			}
			n = churn(time.Duration(s * float64(time.Second)))
		default:
			fmt.Println("error: unknown command", f[0])
			continue
		}
		fmt.Printf("%s n=%d cpu_ns=%d wall_ns=%d\n", f[0], n, processCPU()-cpu0,
			time.Since(t0).Nanoseconds())
	}
}
