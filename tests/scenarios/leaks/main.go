// Command leaks runs the classic goroutine leaks side by side with healthy controls and
// serves its own truth: the ground truth for gotrace's leak detection (`gotrace top`).
//
// Each leak starts its goroutines from its own `go` statement, in its own function, and
// blocks them on its own line; the two lines carry the markers `// leak:NAME:go` and
// `// leak:NAME:block` that tests grep for (httpbody leaks goroutines of net/http itself:
// the persistConn read and write loops, created and blocked in net/http):
//
//	chanrange  `for range` over a channel its producer never closes
//	ctxsend    a send on an unbuffered channel after the receiver gave up on a timeout
//	select     a `select` loop with no exit case, its senders gone
//	nilchan    a receive on a nil channel (a field nobody initialized)
//	waitgroup  WaitGroup.Wait whose worker forgot Done on its error path
//	ticker     a time.Ticker never stopped, ranged over by a goroutine per request
//	httpbody   http.Get responses whose Body is never closed (server in-process)
//	mutex      sync.Mutex.Lock on a mutex a request locked and never unlocked
//
// A request loop runs one simulated request per leak -leak-rate times a second; -pre
// rounds run before the program says it is ready, so some leaks predate any tracer.
//
// Healthy controls run in the same process and must never look like leaks: an idle
// worker pool, keep-alive HTTP clients and the server goroutines reading their
// connections, bounded bursts (50 goroutines that all finish), a ticker owned by one
// long-lived loop, a time.Sleep loop, the servers' Accept loops.
//
// Flags: -leak-rate R, -pre N, -only a,b (leaks to run), -healthy-only, -tick D.
//
// It prints "ready PORT PID" on stdout and serves on 127.0.0.1:PORT:
//
//	GET /truth            JSON: numgoroutine, leaked goroutines per leak, healthy counts
//	GET /pause, /resume   stop (and restart) every driver: requests, bursts, keep-alive
//	                      clients; /pause returns once the in-flight work is done
//	GET /debug/pprof/...  net/http/pprof (goroutine?debug=1|2)
//
// The same commands, one per line on stdin ("truth", "pause", "resume"), answer one line
// on stdout, without starting a goroutine (an HTTP request adds two while it runs).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Leak names, in the order the request loop runs them.
var leakNames = []string{"chanrange", "ctxsend", "select", "nilchan", "waitgroup", "ticker",
	"httpbody", "mutex"}

const (
	poolWorkers      = 4
	keepaliveClients = 4
	burstSize        = 50
)

var (
	leaked   = map[string]*int64{} // goroutines leaked per leak (httpbody: bodies left open)
	enabled  = map[string]bool{}
	rounds   int64 // request rounds done
	paused   int32
	busy     sync.WaitGroup // in-flight driver work, waited for by pause
	busyMu   sync.Mutex     // orders busy.Add against busy.Wait
	start    = time.Now()
	sinkVal  int64
	tickerDt = time.Second

	// Healthy controls' counters.
	poolJobs      int64
	kaRequests    int64
	burstsDone    int64
	ownedTicks    int64
	sleeperRounds int64
	leakPolls     int64

	appURL string // the in-process application server (keep-alive API and the leaky endpoint)
)

func sink(v int) { atomic.AddInt64(&sinkVal, int64(v)) }

func count(name string) { atomic.AddInt64(leaked[name], 1) }

// ---------------------------------------------------------------- the leaks

//go:noinline
func rangeConsumer(ch <-chan int) {
	sum := 0
	for v := range ch { // leak:chanrange:block
		sum += v
	}
	sink(sum)
}

// leakChanRange hands a consumer a few values and returns without closing the channel.
//
//go:noinline
func leakChanRange() {
	ch := make(chan int, 4)
	count("chanrange")
	go rangeConsumer(ch) // leak:chanrange:go
	for i := 0; i < 3; i++ {
		ch <- i
	}
}

//go:noinline
func slowLookup(ch chan<- int) {
	time.Sleep(30 * time.Millisecond) // slower than the caller's patience
	ch <- 42                          // leak:ctxsend:block
}

// leakCtxSend gives up on its worker after a timeout; nobody receives the result.
//
//go:noinline
func leakCtxSend() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
	defer cancel()
	ch := make(chan int)
	go slowLookup(ch) // leak:ctxsend:go
	select {
	case v := <-ch: // only when this goroutine was kept off a CPU for 30 ms
		sink(v)
	case <-ctx.Done():
		count("ctxsend") // nobody will ever receive: the worker is leaked
	}
}

//go:noinline
func eventLoop(msgs <-chan string, acks <-chan int) {
	for {
		select { // leak:select:block
		case m := <-msgs:
			sink(len(m))
		case a := <-acks:
			sink(a)
		}
	}
}

// leakSelect starts an event loop without a way to stop it, sends it one message, leaves.
//
//go:noinline
func leakSelect() {
	msgs := make(chan string)
	acks := make(chan int)
	count("select")
	go eventLoop(msgs, acks) // leak:select:go
	msgs <- "hello"
}

type watcherConfig struct {
	updates chan int // never made: a receive blocks forever
}

//go:noinline
func watchUpdates(cfg *watcherConfig) {
	v := <-cfg.updates // leak:nilchan:block
	sink(v)
}

//go:noinline
func leakNilChan() {
	cfg := &watcherConfig{}
	count("nilchan")
	go watchUpdates(cfg) // leak:nilchan:go
}

//go:noinline
func partWorker(wg *sync.WaitGroup, fail bool) {
	if fail {
		return // the error path forgets wg.Done()
	}
	wg.Done()
}

//go:noinline
func waitParts(wg *sync.WaitGroup) {
	wg.Wait() // leak:waitgroup:block
	sink(1)
}

//go:noinline
func leakWaitGroup() {
	wg := new(sync.WaitGroup)
	wg.Add(2)
	go partWorker(wg, false)
	go partWorker(wg, true)
	count("waitgroup")
	go waitParts(wg) // leak:waitgroup:go
}

//go:noinline
func pollStatus() {
	t := time.NewTicker(tickerDt) // never stopped
	for range t.C {               // leak:ticker:block
		atomic.AddInt64(&leakPolls, 1)
	}
}

//go:noinline
func leakTicker() {
	count("ticker")
	go pollStatus() // leak:ticker:go
}

var leakyClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// leakHTTPBody reads a response's status and drops it: its Body stays open, so the
// connection's read and write loops wait for it forever.
//
//go:noinline
func leakHTTPBody() {
	resp, err := leakyClient.Get(appURL + "/leaky") // leak:httpbody:get
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks: httpbody:", err)
		return
	}
	count("httpbody")
	sink(resp.StatusCode)
}

var stuckMu sync.Mutex

// lockAndForget takes the mutex and returns early on its error path without unlocking.
//
//go:noinline
func lockAndForget(fail bool) {
	stuckMu.Lock()
	if fail {
		return
	}
	stuckMu.Unlock()
}

//go:noinline
func updateShared() {
	stuckMu.Lock() // leak:mutex:block
	sink(2)
	stuckMu.Unlock()
}

//go:noinline
func leakMutex() {
	count("mutex")
	go updateShared() // leak:mutex:go
}

var leakFuncs = map[string]func(){
	"chanrange": leakChanRange, "ctxsend": leakCtxSend, "select": leakSelect,
	"nilchan": leakNilChan, "waitgroup": leakWaitGroup, "ticker": leakTicker,
	"httpbody": leakHTTPBody, "mutex": leakMutex,
}

// round runs one simulated request per enabled leak, and feeds the worker pool.
func round(jobs chan<- int) {
	for _, n := range leakNames {
		if enabled[n] {
			leakFuncs[n]()
		}
	}
	select {
	case jobs <- int(atomic.LoadInt64(&rounds)):
	default:
	}
	atomic.AddInt64(&rounds, 1)
}

// enter marks driver work in flight unless paused; leave ends it.
func enter() bool {
	busyMu.Lock()
	defer busyMu.Unlock()
	if atomic.LoadInt32(&paused) != 0 {
		return false
	}
	busy.Add(1)
	return true
}

func leave() { busy.Done() }

//go:noinline
func requestLoop(rate float64, jobs chan<- int) {
	if rate <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for range t.C {
		if enter() {
			round(jobs)
			leave()
		}
	}
}

// ---------------------------------------------------------------- healthy controls

//go:noinline
func poolWorker(jobs <-chan int) {
	for j := range jobs { // healthy:pool
		sink(j)
		atomic.AddInt64(&poolJobs, 1)
	}
}

//go:noinline
func startPool(jobs <-chan int) {
	for i := 0; i < poolWorkers; i++ {
		go poolWorker(jobs) // healthy:pool:go
	}
}

// kaGet does one keep-alive request and reads the whole body.
func kaGet(c *http.Client) error {
	resp, err := c.Get(appURL + "/api")
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	atomic.AddInt64(&kaRequests, 1)
	return err
}

//go:noinline
func keepaliveClient(c *http.Client) {
	for {
		time.Sleep(time.Duration(150+rand.Intn(100)) * time.Millisecond)
		if !enter() {
			continue
		}
		err := kaGet(c)
		leave()
		if err != nil {
			fmt.Fprintln(os.Stderr, "leaks: keep-alive client:", err)
		}
	}
}

// startKeepalive connects the keep-alive clients, each with its own transport (so each
// holds exactly one connection), then starts their request loops.
//
//go:noinline
func startKeepalive() {
	for i := 0; i < keepaliveClients; i++ {
		c := &http.Client{Transport: &http.Transport{Proxy: nil}}
		if err := kaGet(c); err != nil {
			fmt.Fprintln(os.Stderr, "leaks: keep-alive client:", err)
			os.Exit(1)
		}
		go keepaliveClient(c) // healthy:keepalive:go
	}
}

//go:noinline
func burstTask(wg *sync.WaitGroup, d time.Duration) {
	time.Sleep(d)
	wg.Done()
}

// burstLoop starts 50 short tasks every 2 s and waits until all finished.
//
//go:noinline
func burstLoop() {
	for {
		time.Sleep(2 * time.Second)
		if !enter() {
			continue
		}
		var wg sync.WaitGroup
		wg.Add(burstSize)
		for i := 0; i < burstSize; i++ {
			go burstTask(&wg, time.Duration(5+rand.Intn(45))*time.Millisecond) // healthy:burst:go
		}
		wg.Wait()
		leave()
		atomic.AddInt64(&burstsDone, 1)
	}
}

// ownedTicker is the right way: one long-lived loop owns its ticker.
//
//go:noinline
func ownedTicker() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for range t.C { // healthy:ticker
		atomic.AddInt64(&ownedTicks, 1)
	}
}

//go:noinline
func sleeper() {
	for {
		time.Sleep(50 * time.Millisecond) // healthy:sleep
		atomic.AddInt64(&sleeperRounds, 1)
	}
}

// ---------------------------------------------------------------- truth and control

type truthDoc struct {
	NumGoroutine int              `json:"numgoroutine"`
	UptimeS      float64          `json:"uptime_s"`
	Paused       bool             `json:"paused"`
	Rounds       int64            `json:"rounds"`
	Leaks        map[string]int64 `json:"leaks"`
	Healthy      map[string]int64 `json:"healthy"`
}

func truth() []byte {
	d := truthDoc{
		NumGoroutine: runtime.NumGoroutine(),
		UptimeS:      time.Since(start).Seconds(),
		Paused:       atomic.LoadInt32(&paused) != 0,
		Rounds:       atomic.LoadInt64(&rounds),
		Leaks:        map[string]int64{},
		Healthy: map[string]int64{
			"pool_workers":       poolWorkers,
			"pool_jobs":          atomic.LoadInt64(&poolJobs),
			"keepalive_clients":  keepaliveClients, // one connection each
			"keepalive_requests": atomic.LoadInt64(&kaRequests),
			"bursts":             atomic.LoadInt64(&burstsDone),
			"burst_size":         burstSize,
			"owned_ticks":        atomic.LoadInt64(&ownedTicks),
			"sleeper_rounds":     atomic.LoadInt64(&sleeperRounds),
			"leak_polls":         atomic.LoadInt64(&leakPolls),
		},
	}
	for _, n := range leakNames {
		if enabled[n] {
			d.Leaks[n] = atomic.LoadInt64(leaked[n])
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

// pause stops every driver and waits for the work in flight (bursts included) to end.
func pause() {
	busyMu.Lock()
	atomic.StoreInt32(&paused, 1)
	busyMu.Unlock()
	busy.Wait()
	time.Sleep(100 * time.Millisecond) // the last goroutines of the work reach goexit
}

func resume() { atomic.StoreInt32(&paused, 0) }

func command(line string) string {
	switch strings.TrimSpace(line) {
	case "truth":
		return string(truth())
	case "pause":
		pause()
		return "ok"
	case "resume":
		resume()
		return "ok"
	}
	return "error: unknown command " + line
}

// stdinLoop answers commands on stdin; it is one goroutine in a read syscall, always.
func stdinLoop() {
	r := bufio.NewReader(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return // stdin closed: keep running, tests may still use HTTP
		}
		fmt.Fprintln(w, command(line))
		w.Flush()
	}
}

func serve(ln net.Listener, h http.Handler) {
	if err := http.Serve(ln, h); err != nil {
		fmt.Fprintln(os.Stderr, "leaks:", err)
		os.Exit(1)
	}
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks:", err)
		os.Exit(1)
	}
	return ln
}

func main() {
	rate := flag.Float64("leak-rate", 2, "simulated requests per second per leak (0: none)")
	pre := flag.Int("pre", 3, "request rounds before printing ready")
	only := flag.String("only", "", "comma-separated leaks to run (default: all)")
	healthyOnly := flag.Bool("healthy-only", false, "run no leak, only the healthy controls")
	flag.DurationVar(&tickerDt, "tick", time.Second, "period of the leaked tickers")
	flag.Parse()

	for _, n := range leakNames {
		leaked[n] = new(int64)
		enabled[n] = !*healthyOnly
	}
	if *only != "" && !*healthyOnly {
		for _, n := range leakNames {
			enabled[n] = false
		}
		for _, n := range strings.Split(*only, ",") {
			if _, ok := leakFuncs[n]; !ok {
				fmt.Fprintf(os.Stderr, "leaks: unknown leak %q (known: %s)\n", n,
					strings.Join(leakNames, ","))
				os.Exit(2)
			}
			enabled[n] = true
		}
	}

	// The application server: a keep-alive API and the endpoint whose bodies leak
	// (it closes its side, so only the client's goroutines stay).
	app := http.NewServeMux()
	app.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	app.HandleFunc("/leaky", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "ok")
	})
	appLn := listen()
	appURL = "http://" + appLn.Addr().String()
	go serve(appLn, app)

	// The truth server: /truth, /pause, /resume and net/http/pprof.
	http.HandleFunc("/truth", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(truth())
	})
	http.HandleFunc("/pause", func(w http.ResponseWriter, r *http.Request) {
		pause()
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/resume", func(w http.ResponseWriter, r *http.Request) {
		resume()
		fmt.Fprintln(w, "ok")
	})
	ln := listen()
	go serve(ln, nil)

	// Healthy controls.
	jobs := make(chan int, poolWorkers)
	startPool(jobs)
	startKeepalive()
	go burstLoop()
	go ownedTicker()
	go sleeper()

	// Leaks before ready: the first census must find them.
	if enabled["mutex"] {
		lockAndForget(true)
	}
	for i := 0; i < *pre; i++ {
		round(jobs)
	}
	time.Sleep(50 * time.Millisecond) // ctxsend workers reach their send
	go requestLoop(*rate, jobs)

	fmt.Printf("ready %d %d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	stdinLoop()
	select {}
}
