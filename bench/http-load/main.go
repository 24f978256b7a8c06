// http-load: the load generator of bench/http-live. Keep-alive HTTP/1.1 GETs on a fixed set of connections, each
// connection one request at a time (no pipelining), responses read and checked by net/http's own parser.
//
// With -rate > 0 it is open-loop: request i is due at start + i/rate, whether or not earlier ones have finished,
// and its latency runs from that due time to its response's last byte. Connection k sends requests k, k+N, ...
// (as wrk2 does): a request whose connection is still busy, or whose thread wakes late, pays that wait in its
// latency: no coordinated omission. With -rate 0 it is
// closed-loop (each connection sends its next request when the previous one is answered): the capacity probe.
// Each connection is its worker's alone, on an OS thread of its own, with blocking syscalls: at 1,000/s on this
// machine, Go's netpoller and timers made a p99 of 14 ms where this makes one of 1-2 ms.
//
// Prints one JSON line: requests sent and answered, errors, seconds, achieved rate and percentiles (µs) of two
// latencies: latency_us from the due time (open-loop) and service_us from the request's write to its response's
// last byte (what the request path itself took, without the waits before the write); its own peak RSS.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Requests    int64              `json:"requests"`
	Answered    int64              `json:"answered"`
	Errors      int64              `json:"errors"`
	FirstError  string             `json:"first_error,omitempty"`
	Seconds     float64            `json:"seconds"`
	AchievedPS  float64            `json:"achieved_per_s"`
	Connections int                `json:"connections"`
	LatencyUs   map[string]float64 `json:"latency_us"`
	ServiceUs   map[string]float64 `json:"service_us"`
	MaxRssKb    int64              `json:"max_rss_kb"`
}

// The percentiles reported of a set of durations, in µs.
func percentiles(all []time.Duration) map[string]float64 {
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	quantile := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(int(q*float64(len(all))), len(all)-1)].Nanoseconds()) / 1000
	}
	return map[string]float64{"p50": quantile(0.50), "p90": quantile(0.90), "p99": quantile(0.99), "p999": quantile(0.999), "max": quantile(1)}
}

// Go's timers wake in whole milliseconds (its poller's timeout), which would add up to 1 ms to a due time. A
// worker instead sleeps in nanosleep on an OS thread of its own, with the thread's timer slack (50 µs by default)
// set to 1 ns: it wakes within microseconds of its due time, and does not spin.
func preciseSleeps() {
	runtime.LockOSThread()
	const prSetTimerslack = 29
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
}

func sleepUntil(at time.Time) {
	if wait := time.Until(at); wait > 0 {
		ts := syscall.NsecToTimespec(wait.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
	}
}

// A connection read and written with blocking syscalls on the worker's own thread: no netpoller between the kernel
// and the worker (whose wake-ups, handed between threads, would add their own delays to the latency).
type blockingConn struct {
	file *os.File
	fd   int
}

func dialBlocking(target string) (*blockingConn, error) {
	conn, err := net.Dial("tcp", target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	file, err := conn.(*net.TCPConn).File() // a duplicate of the socket, in blocking mode
	if err != nil {
		return nil, err
	}
	return &blockingConn{file: file, fd: int(file.Fd())}, nil
}

func (c *blockingConn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(c.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *blockingConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := syscall.Write(c.fd, p[written:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

func (c *blockingConn) Close() error { return c.file.Close() }

func main() {
	target := flag.String("target", "", "host:port")
	path := flag.String("path", "/", "request path")
	rate := flag.Float64("rate", 0, "requests per second; 0 = closed loop")
	duration := flag.Duration("duration", 10*time.Second, "how long requests are sent")
	connections := flag.Int("connections", 16, "keep-alive connections")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "http-load: -target is required")
		os.Exit(2)
	}
	request := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sidecarless-http-load\r\n\r\n", *path, *target))

	// A P per worker thread and two to spare: a worker blocked in a syscall keeps its P (until the runtime's
	// monitor retakes it, up to 10 ms later), which with fewer Ps would hold up the other workers.
	runtime.GOMAXPROCS(*connections + 2)
	conns := make([]*blockingConn, *connections)
	for i := range conns {
		conn, err := dialBlocking(*target)
		if err != nil {
			fmt.Fprintf(os.Stderr, "http-load: connect %s: %v\n", *target, err)
			os.Exit(1)
		}
		conns[i] = conn
	}

	var sent, errors atomic.Int64
	var firstError atomic.Value
	latencies := make([][]time.Duration, *connections)
	services := make([][]time.Duration, *connections)
	// One request on one connection: write it, read its whole response; its service time, or false (and counted)
	// when it fails.
	exchange := func(conn *blockingConn, reader *bufio.Reader) (time.Duration, bool) {
		written := time.Now()
		fail := func(err error) (time.Duration, bool) {
			errors.Add(1)
			firstError.CompareAndSwap(nil, err.Error())
			return 0, false
		}
		if _, err := conn.Write(request); err != nil {
			return fail(err)
		}
		response, err := http.ReadResponse(reader, nil)
		if err != nil {
			return fail(err)
		}
		_, err = io.Copy(io.Discard, response.Body)
		response.Body.Close()
		if err != nil {
			return fail(err)
		}
		if response.StatusCode != 200 {
			return fail(fmt.Errorf("status %d", response.StatusCode))
		}
		return time.Since(written), true
	}

	start := time.Now()
	deadline := start.Add(*duration)
	var workers sync.WaitGroup
	if *rate > 0 {
		total := int64(duration.Seconds() * *rate)
		interval := float64(time.Second) / *rate
		for i, conn := range conns {
			workers.Add(1)
			go func(i int, conn *blockingConn) {
				defer workers.Done()
				preciseSleeps()
				reader := bufio.NewReader(conn)
				for n := int64(i); n < total; n += int64(len(conns)) {
					at := start.Add(time.Duration(float64(n) * interval))
					sleepUntil(at)
					sent.Add(1)
					if service, ok := exchange(conn, reader); ok {
						latencies[i] = append(latencies[i], time.Since(at))
						services[i] = append(services[i], service)
					}
				}
			}(i, conn)
		}
	} else {
		for i, conn := range conns {
			workers.Add(1)
			go func(i int, conn *blockingConn) {
				defer workers.Done()
				runtime.LockOSThread()
				reader := bufio.NewReader(conn)
				for time.Now().Before(deadline) {
					at := time.Now()
					sent.Add(1)
					if service, ok := exchange(conn, reader); ok {
						latencies[i] = append(latencies[i], time.Since(at))
						services[i] = append(services[i], service)
					}
				}
			}(i, conn)
		}
	}
	workers.Wait()
	elapsed := time.Since(start)
	for _, conn := range conns {
		conn.Close()
	}

	var all, allServices []time.Duration
	for i := range latencies {
		all = append(all, latencies[i]...)
		allServices = append(allServices, services[i]...)
	}
	out := result{
		Requests:    sent.Load(),
		Answered:    int64(len(all)),
		Errors:      errors.Load(),
		Seconds:     elapsed.Seconds(),
		AchievedPS:  float64(len(all)) / elapsed.Seconds(),
		Connections: *connections,
		LatencyUs:   percentiles(all),
		ServiceUs:   percentiles(allServices),
	}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		out.MaxRssKb = usage.Maxrss // in kB on Linux
	}
	if e, ok := firstError.Load().(string); ok {
		out.FirstError = e
	}
	json.NewEncoder(os.Stdout).Encode(out)
	if out.Errors > 0 {
		os.Exit(1)
	}
}
