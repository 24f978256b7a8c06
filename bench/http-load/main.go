// http-load: the load generator of bench/http-live. Keep-alive HTTP/1.1 GETs on a fixed set of connections, each
// connection one request at a time (no pipelining), responses read and checked by net/http's own parser.
//
// With -rate > 0 it is open-loop: request i is due at start + i/rate, whether or not earlier ones have finished,
// and its latency runs from that due time to its response's last byte. A request that waits for a free
// connection, or for a late scheduler, pays that wait in its latency: no coordinated omission. With -rate 0 it is
// closed-loop (each connection sends its next request when the previous one is answered): the capacity probe.
//
// Prints one JSON line: requests sent and answered, errors, seconds, achieved rate and percentiles (µs) of two
// latencies: latency_us from the due time (open-loop) and service_us from the request's write to its response's
// last byte (what the request path itself took, without the waits before the write).
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

	conns := make([]net.Conn, *connections)
	for i := range conns {
		conn, err := net.Dial("tcp", *target)
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
	exchange := func(conn net.Conn, reader *bufio.Reader) (time.Duration, bool) {
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
		// Connection i sends requests i, i+N, i+2N, ... (as wrk2 does); one whose previous request is still
		// running sends late, and the wait counts in the latency.
		total := int64(duration.Seconds() * *rate)
		interval := float64(time.Second) / *rate
		for i, conn := range conns {
			workers.Add(1)
			go func(i int, conn net.Conn) {
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
			go func(i int, conn net.Conn) {
				defer workers.Done()
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
	if e, ok := firstError.Load().(string); ok {
		out.FirstError = e
	}
	json.NewEncoder(os.Stdout).Encode(out)
	if out.Errors > 0 {
		os.Exit(1)
	}
}
