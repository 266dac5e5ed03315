package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
)

// The Azure Maps emulator runs in a process of its own, as a real deployment
// calls a remote service over HTTPS: its CPU is not the worker's, and the
// worker pays for TLS and HTTP/2 as it would against Azure Maps. The bench
// binary started with BENCH_EMULATOR set is that process. It prints its
// endpoints as one JSON line, then obeys one command per line on stdin,
// answering each with one line, and exits when stdin closes:
//
//	latency 50ms        delay every answer
//	limits gen2|off     throttle at the Gen2 per-account limits (429), or not
//	reset               start counting afresh
//	stats               the counts, as JSON (mapstest.Stats)
func emulatorChild() int {
	srv, err := mapstest.Start(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench emulator:", err)
		return 1
	}
	defer srv.Close()
	out := bufio.NewWriter(os.Stdout)
	hello, _ := json.Marshal(emulatorHello{srv.URL, srv.ClientID, srv.IdentityEndpoint, srv.IdentityHeader, srv.CAFile()})
	fmt.Fprintf(out, "%s\n", hello)
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		reply := "ok"
		switch cmd {
		case "latency":
			d, err := time.ParseDuration(arg)
			if err != nil {
				reply = "error " + err.Error()
				break
			}
			srv.SetLatency(d)
		case "limits":
			for api, qps := range maps.DefaultRateLimits() {
				if arg != "gen2" {
					qps = 0
				}
				srv.SetRateLimit(api, qps)
			}
		case "limit": // limit <api> <qps>
			api, qps, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(qps)
			if err != nil {
				reply = "error " + err.Error()
				break
			}
			srv.SetRateLimit(api, n)
		case "reset":
			srv.ResetStats()
		case "stats":
			b, _ := json.Marshal(srv.Stats())
			reply = string(b)
		default:
			reply = "error unknown command " + strconv.Quote(cmd)
		}
		fmt.Fprintln(out, reply)
		out.Flush()
	}
	return 0
}

type emulatorHello struct {
	URL, ClientID, IdentityEndpoint, IdentityHeader, CAFile string
}

// emulator is the parent's handle on the emulator process.
type emulator struct {
	emulatorHello
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startEmulator starts the emulator process. The bench process starts one
// only (see shared): its credential's tokens are cached process-wide.
func startEmulator() (*emulator, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_EMULATOR=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &emulator{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	e.out.Buffer(nil, 1<<20)
	if !e.out.Scan() {
		e.Close()
		return nil, fmt.Errorf("the emulator process said nothing: %v", e.out.Err())
	}
	if err := json.Unmarshal(e.out.Bytes(), &e.emulatorHello); err != nil {
		e.Close()
		return nil, fmt.Errorf("the emulator process said %q: %v", e.out.Text(), err)
	}
	return e, nil
}

// reset undoes whatever a row set: no latency, no throttling, counts afresh.
func (e *emulator) reset() error {
	if err := e.setLatency(0); err != nil {
		return err
	}
	if err := e.setGen2Limits(false); err != nil {
		return err
	}
	return e.resetStats()
}

// do sends one command and returns the answer.
func (e *emulator) do(cmd string) (string, error) {
	if _, err := fmt.Fprintln(e.in, cmd); err != nil {
		return "", err
	}
	if !e.out.Scan() {
		return "", fmt.Errorf("emulator: no answer to %q: %v", cmd, e.out.Err())
	}
	if a := e.out.Text(); strings.HasPrefix(a, "error ") {
		return "", fmt.Errorf("emulator: %s", a)
	}
	return e.out.Text(), nil
}

func (e *emulator) setLatency(d time.Duration) error {
	_, err := e.do("latency " + d.String())
	return err
}

func (e *emulator) setGen2Limits(on bool) error {
	arg := "off"
	if on {
		arg = "gen2"
	}
	_, err := e.do("limits " + arg)
	return err
}

func (e *emulator) resetStats() error {
	_, err := e.do("reset")
	return err
}

func (e *emulator) stats() (mapstest.Stats, error) {
	var st mapstest.Stats
	a, err := e.do("stats")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(a), &st)
}

// Close ends the emulator process: closing its stdin stops it; it is
// killed if it has not stopped within 10 s.
func (e *emulator) Close() {
	e.in.Close()
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
}
