//go:build noprof

package main

const pprofLinked = false
