// SPDX-License-Identifier: MIT

// probe_cost times a tight loop of N calls to a noinline function. Run it with and
// without a uprobe on main.target (bench/probe_cost.sh does both): the difference
// per call is the cost of one probe hit at that site. It reports wall time and the
// loop thread's CPU time (user + system; the kernel's uprobe work is system time of
// the probed thread), which other load on the machine does not inflate.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"syscall"
	"time"
)

var sink int

//go:noinline
func leaf(i int) int { return i ^ 0x5a }

// target has the usual prologue (stack check, frame setup) and one RET.
//
//go:noinline
func target(i int) int { return leaf(i) + 1 }

// threadCPU is this thread's user + system CPU time.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, not in package syscall
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	n := flag.Int("n", 1000000, "calls to main.target")
	flag.Parse()

	runtime.LockOSThread() // the CPU time measured is this thread's
	target(0)
	cpu0 := threadCPU()
	start := time.Now()
	s := 0
	for i := 0; i < *n; i++ {
		s += target(i)
	}
	el := time.Since(start)
	cpu := threadCPU() - cpu0
	sink = s
	fmt.Printf("calls=%d ns=%d ns_per_call=%.2f cpu_ns_per_call=%.2f\n", *n, el.Nanoseconds(),
		float64(el.Nanoseconds())/float64(*n), float64(cpu.Nanoseconds())/float64(*n))
}
