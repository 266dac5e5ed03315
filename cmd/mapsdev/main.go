// Command mapsdev holds mapsworker's development tools, kept out of the
// mapsworker binary that the WebJob ships so that no emulator, test
// certificate or test helper goes to production:
//
//	mapsdev emulate   serve the local Azure Maps emulator and managed identity token endpoint
//
// `make run` (cmd/localrun) starts `mapsdev emulate` beside Azurite and the
// worker.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout io.Writer) error
}

var commands = []command{
	{"emulate", "serve a local Azure Maps emulator and managed identity token endpoint", cmdEmulate},
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "mapsdev %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "mapsdev: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage ends a command whose flags were wrong; the flag package has said
// why.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprint(w, "mapsdev: mapsworker's development tools (not shipped with the WebJob).\n\nUsage: mapsdev <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\n`mapsdev <command> --help` shows a command's flags.\n")
}
