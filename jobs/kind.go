package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"mapsworker/worker"
)

// A kind is one kind of request ("geocode", "route", …): how its messages
// decode and validate, what it asks Azure Maps, how its result is summarised
// and shown. Each kind is a type in a file of its own (geocode.go,
// reverse.go, route.go, matrix.go), registered in kinds; nothing outside
// that file knows what a kind does.
type kind interface {
	// name is the request's "kind" field and the folder of its results.
	name() string
	// decode validates the fields of a request of this kind (all but id
	// and kind) and returns the call it makes. Its errors are
	// [worker.Invalidf] errors with one of the package's codes.
	decode(f fields) (call, error)
	// probe is a known-good call that every Azure Maps account can answer,
	// used to tell an outage from requests that fail on their own.
	probe() call
	// describe renders a result's stored summary on one line for people.
	describe(summary json.RawMessage) (string, error)
	// fromArgs builds the fields of a request from command-line words
	// (those after the kind), for `mapsworker enqueue <kind> …`.
	fromArgs(args []string, o ArgOptions) (map[string]any, error)
	// example is an example of fromArgs's words, for help text and tests.
	example() []string
}

// A call is a decoded request, ready to ask Azure Maps.
type call interface {
	// run asks Azure Maps once and returns the answer and its summary. Its
	// errors are classified (see classify); it keeps no state between runs.
	run(ctx context.Context) (*worker.Output, error)
}

// env is what a kind's calls use: the Azure Maps client and the handler's
// options. A kind built with a nil env only decodes, describes and builds
// requests from arguments (the CLI's use); its calls are never run.
type env struct {
	maps     Maps
	batch    bool // gather single calls into batch calls under backlog
	batchMax int
	// checkpoints keep the operations of asynchronous route matrices
	// across deliveries and processes; nil keeps them in process only.
	checkpoints Checkpoints
}

// kinds lists every kind of request: the one place a new kind is added.
var kinds = []func(*env) kind{
	newGeocode,
	newReverseGeocode,
	newRoute,
	newRouteMatrix,
}

// ArgOptions are the command-line options a kind may use when it builds a
// request from words (`mapsworker enqueue`). Kinds ignore those that do not
// apply to them.
type ArgOptions struct {
	Top        int    // geocode: most matches
	TravelMode string // route: driving, truck or walking
	// Fields are further fields of the request, by their JSON names, each
	// a JSON value or else a string: any option of any kind
	// (avoid=["tollRoads"], maxRouteCount=2, language=de-DE). They are
	// validated with the rest when the request is decoded.
	Fields map[string]string
}

// cliKinds are the kinds without an env, for describing and building requests.
var cliKinds = buildKinds(nil)

func buildKinds(e *env) map[string]kind {
	m := make(map[string]kind, len(kinds))
	for _, build := range kinds {
		k := build(e)
		m[k.name()] = k
	}
	return m
}

// KindNames returns the names of every kind of request, sorted.
func KindNames() []string {
	names := make([]string, 0, len(cliKinds))
	for n := range cliKinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// kindList is the kinds' names for messages: "geocode, reverse-geocode or route".
func kindList() string {
	names := KindNames()
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// DescribeSummary renders the summary of a result of the given kind, as
// stored in its document, on one line for people. A summary it cannot read
// is shown as stored.
func DescribeSummary(kind string, summary json.RawMessage) string {
	if k, ok := cliKinds[kind]; ok {
		if line, err := k.describe(summary); err == nil {
			return line
		}
	}
	return string(summary)
}

// RequestFromArgs builds a request of the named kind from command-line words
// (those after the kind), with id when it is not empty. The request is not
// validated: Decode does that.
func RequestFromArgs(kind string, args []string, id string, o ArgOptions) ([]byte, error) {
	k, ok := cliKinds[kind]
	if !ok {
		return nil, worker.Invalidf(codeUnknownKind, "unknown kind %s: %s", quote(kind), kindList())
	}
	f, err := k.fromArgs(args, o)
	if err != nil {
		return nil, err
	}
	for name, v := range o.Fields {
		switch name {
		case "kind":
			return nil, errors.New("the kind is the first word, not a field")
		case "id":
			return nil, errors.New("the id is given with --id, not as a field")
		case "":
			return nil, errors.New("a field needs a name: name=value")
		}
		if json.Valid([]byte(v)) {
			f[name] = json.RawMessage(v)
		} else {
			f[name] = v
		}
	}
	f["kind"] = kind
	if id != "" {
		f["id"] = id
	}
	return json.Marshal(f)
}

// KindExamples returns an example of each kind's command-line words, as
// "<kind> <words>" lines, words with spaces quoted.
func KindExamples() []string {
	var lines []string
	for _, n := range KindNames() {
		line := n
		for _, w := range cliKinds[n].example() {
			if strings.ContainsAny(w, " \t\"'") {
				w = strconv.Quote(w)
			}
			line += " " + w
		}
		lines = append(lines, line)
	}
	return lines
}
