// Command mapsworker is an Azure WebJob (continuous) that geocodes and routes
// requests from an Azure Storage queue with Azure Maps and writes each result
// to blob storage. `mapsworker run` is the job; the other commands are the
// operator's tools, with the same settings and identity.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"mapsworker/internal/redact"
	"mapsworker/internal/settings"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

type command struct {
	name, summary string
	run           func(args []string) error
	// storage commands first check that the storage endpoints answer, so
	// that a stopped Azurite is one clear line, not the SDK's retries.
	storage bool
}

var commands []command

func init() {
	commands = []command{
		{"run", "work the request queue until stopped (the WebJob's job)", cmdRun, false},
		{"enqueue", "validate and send requests to the queue", cmdEnqueue, true},
		{"result", "show the result of a request", cmdResult, true},
		{"poison", "list, replay or purge poisoned messages", cmdPoison, true},
		{"stats", "queue depths, oldest message, recent results", cmdStats, true},
		{"status", "every instance's health; exit 1 when none is healthy", cmdStatus, true},
		{"check", "try every dependency with the configured identity", cmdCheck, false},
		{"version", "print the version", cmdVersion, false},
	}
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stderr))
}

func runMain(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		var err error
		if c.storage && !helpAsked(args[1:]) {
			err = checkStorageReachable(context.Background(), os.Getenv)
		}
		if err == nil {
			err = c.run(args[1:])
		}
		return exitStatus(stderr, c.name, err)
	}
	fmt.Fprintf(stderr, "mapsworker: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// exitStatus says what went wrong with command name, if anything, on one
// line of stderr without a secret, and returns the command's exit status: 0,
// exitSettings for a bad setting or flag, an exitError's own, or 1.
func exitStatus(stderr io.Writer, name string, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var se *settings.Error
	if errors.As(err, &se) {
		fmt.Fprintf(stderr, "mapsworker %s: configuration: %s\n", name, redacted(se.Error()))
		return exitSettings
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(stderr, "mapsworker %s: %s\n", name, redacted(ee.msg))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "mapsworker %s: %s\n", name, redacted(err.Error()))
	return 1
}

func cmdVersion(args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = usageFor(fs, "version", "Print the version of this build.", "mapsworker version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Println("mapsworker", version)
	return nil
}

// exitError ends a command with a given status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprintf(w, "mapsworker %s: geocode and route queued requests with Azure Maps.\n\nUsage: mapsworker <command> [flags]\n\nCommands:\n", version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nSettings come from the environment (see README). `mapsworker <command> --help` shows a command's flags.\n")
}

// usageFor returns a flag set's usage function with a summary and examples.
func usageFor(fs *flag.FlagSet, synopsis, summary string, examples ...string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: mapsworker %s [flags]\n\n%s\n", synopsis, summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
		if len(examples) > 0 {
			fmt.Fprint(w, "\nExamples:\n")
			for _, e := range examples {
				fmt.Fprintf(w, "  %s\n", e)
			}
		}
	}
}

// redacted is text without the secrets it may hold, the values of the
// secret settings in this process's environment included: it covers text
// printed before the settings are loaded, or when they do not load.
func redacted(text string) string {
	return redact.Text(text, settings.Secrets(os.Getenv)...)
}

// shortErr is err on one line for the operator, without URL queries or
// secrets (see redact.Error).
func shortErr(err error) string {
	return redact.Error(err, settings.Secrets(os.Getenv)...)
}
