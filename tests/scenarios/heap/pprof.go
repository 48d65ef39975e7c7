//go:build !noprof

// Linking net/http/pprof keeps runtime.MemProfile reachable, so memory profiling stays on.
// Build with -tags noprof for the binary where the linker turns it off.
package main

import _ "net/http/pprof"

const pprofLinked = true
