// Package azurite starts a real Azurite storage emulator (the npm package
// pinned in the repository's azurite/ folder) on free loopback ports, for
// tests, benchmarks and the local run. It is a development tool; the worker
// itself never uses it. Tests start one with package azuritetest.
package azurite

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"mapsworker/internal/azurite/procgroup"
)

// AccountName and AccountKey are Azurite's well-known development account.
// The key is public (documented by Microsoft) and only works against Azurite.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Options configure Start.
type Options struct {
	// Location keeps data on disk in this folder (for restart tests);
	// empty keeps it in memory.
	Location string
	// OAuth, with CertFile and KeyFile, runs Azurite over HTTPS with
	// `--oauth basic`, which accepts bearer tokens for identity-based
	// connections.
	OAuth             bool
	CertFile, KeyFile string
	// Debug writes Azurite's debug log to this file.
	Debug string
	// BlobPort and QueuePort, when set, are the ports to listen on (to
	// restart an Azurite where clients expect it); zero picks free ones.
	BlobPort, QueuePort int
}

// Server is a running Azurite.
type Server struct {
	BlobPort, QueuePort int
	Scheme              string
	cmd                 *exec.Cmd
	group               *procgroup.Group
	exited              chan struct{}
}

// Start launches Azurite on loopback ports and waits until it listens.
func Start(opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "node_modules", "azurite", "dist", "src", "azurite.js")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("azurite is not installed in %s (run `make deps`): %w", dir, err)
	}
	node, err := Node(dir)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		s, err := start(node, script, filepath.Join(dir, "node_modules", ".cache", "node-compile-cache"), opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// listeningRE matches the line Azurite prints once a service listens; with
// port 0 it is the only way to learn the port the system gave it.
var listeningRE = regexp.MustCompile(`^Azurite (Blob|Queue) service is successfully listening at \S+:(\d+)$`)

// start runs one Azurite. It asks for port 0 (unless opts name ports), so
// that no other process can take a port between its choice and the bind,
// and reads the ports Azurite reports.
func start(node, script, compileCache string, opts *Options) (*Server, error) {
	s := &Server{Scheme: "http", exited: make(chan struct{})}
	args := []string{script,
		"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(opts.BlobPort), "--queuePort", strconv.Itoa(opts.QueuePort), "--tablePort", "0",
		"--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
	}
	if opts.Location != "" {
		args = append(args, "--location", opts.Location)
	} else {
		args = append(args, "--inMemoryPersistence")
	}
	if opts.OAuth {
		s.Scheme = "https"
		args = append(args, "--oauth", "basic", "--cert", opts.CertFile, "--key", opts.KeyFile)
	}
	if opts.Debug != "" {
		args = append(args, "--debug", opts.Debug)
	}
	cmd := exec.Command(node, args...)
	// Node 22 keeps the code it compiled for Azurite there, and the next
	// start skips a fifth of its work (tests start dozens of Azurites).
	cmd.Env = append(os.Environ(), "NODE_COMPILE_CACHE="+compileCache)
	verbose := os.Getenv("MAPSWORKER_AZURITE_VERBOSE") != ""
	if verbose {
		cmd.Stderr = os.Stderr
	}
	// An os.Pipe rather than cmd.StdoutPipe: the reader below may outlive
	// cmd.Wait, which closes the pipes it made.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	g, err := procgroup.Start(cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("starting azurite: %w", err)
	}
	s.cmd, s.group = cmd, g
	go func() { cmd.Wait(); close(s.exited) }()
	ports := make(chan []string, 2)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if verbose {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				ports <- m[1:]
			}
		}
	}()
	if err := s.waitReady(ports, 30*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitReady waits until Azurite has said that its blob and queue services
// listen, and on which ports.
func (s *Server) waitReady(ports <-chan []string, limit time.Duration) error {
	timeout := time.After(limit)
	for s.BlobPort == 0 || s.QueuePort == 0 {
		select {
		case p := <-ports:
			n, _ := strconv.Atoi(p[1])
			if p[0] == "Blob" {
				s.BlobPort = n
			} else {
				s.QueuePort = n
			}
		case <-s.exited:
			return errors.New("azurite exited at start (port taken?)")
		case <-timeout:
			return fmt.Errorf("azurite did not listen within %v", limit)
		}
	}
	return nil
}

// ConnectionString is the storage connection string of this Azurite.
// (azqueue rejects the `UseDevelopmentStorage=true` shorthand.)
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;",
		s.Scheme, AccountName, AccountKey, s.BlobURL(), s.QueueURL())
}

// BlobURL is the blob service URL of the development account.
func (s *Server) BlobURL() string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", s.Scheme, s.BlobPort, AccountName)
}

// QueueURL is the queue service URL of the development account.
func (s *Server) QueueURL() string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", s.Scheme, s.QueuePort, AccountName)
}

// PID is Azurite's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Close stops Azurite and every process it started: it asks them to stop,
// and kills them after 3 s.
func (s *Server) Close() {
	if s.group == nil {
		return
	}
	defer s.group.Release()
	select {
	case <-s.exited:
		return
	default:
	}
	wait := 3 * time.Second
	if s.group.Interrupt() != nil {
		wait = 0
	}
	select {
	case <-s.exited:
	case <-time.After(wait):
		s.group.Kill()
		<-s.exited
	}
}

// Dir finds the folder holding Azurite's npm manifest: $MAPSWORKER_AZURITE_DIR,
// or azurite/ in the working directory or one of its parents.
func Dir() (string, error) {
	if d := os.Getenv("MAPSWORKER_AZURITE_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "azurite", "package.json")); err == nil {
			return filepath.Join(d, "azurite"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no azurite/package.json above " + wd + "; set MAPSWORKER_AZURITE_DIR")
		}
	}
}
