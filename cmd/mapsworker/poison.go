package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"mapsworker/jobs"
	"mapsworker/worker"
)

func cmdPoison(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(os.Stderr, "Usage: mapsworker poison list|replay|purge [flags]\n\n"+
			"  list     show poisoned messages: id, kind, error, dequeue count, when\n"+
			"  replay   put the original text back on the request queue (--all, --id ID, --class CLASS)\n"+
			"  purge    delete every poisoned message (asks first; --yes to skip)\n\n"+
			"`mapsworker poison <command> --help` shows a command's flags.\n\n"+
			"Examples:\n"+
			"  mapsworker poison list\n"+
			"  mapsworker poison replay --class transient\n"+
			"  mapsworker poison purge --yes\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return &exitError{2, ""}
	}
	switch args[0] {
	case "list":
		return poisonList(args[1:])
	case "replay":
		return poisonReplay(args[1:])
	case "purge":
		return poisonPurge(args[1:])
	}
	return &exitError{2, fmt.Sprintf("unknown poison command %q: list, replay or purge", args[0])}
}

// requestIdentity reads the id and kind of a poisoned request (raw or
// base64); a request without a valid id is named as its result is.
func requestIdentity(env worker.Envelope) (id, kind string) {
	id, kind = env.Name, "?"
	if id == "" {
		id = env.MessageID
	}
	body, err := worker.DecodeBody(env.Message)
	if err != nil {
		return id, kind
	}
	var r struct{ ID, Kind string }
	_ = json.Unmarshal(body, &r)
	if r.ID != "" && jobs.ValidID(r.ID) {
		id = r.ID
	}
	if r.Kind != "" {
		kind = r.Kind
	}
	return id, kind
}

func poisonList(args []string) error {
	fs := flag.NewFlagSet("poison list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the envelopes as JSON lines")
	fs.Usage = usageFor(fs, "poison list [--json]", "Show the poisoned messages (up to 32, the most a peek returns) and how many there are.",
		"mapsworker poison list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	ctx := context.Background()
	total, err := a.storage.Poison.Depth(ctx)
	if err != nil {
		return err // it names the queue
	}
	msgs, err := a.storage.PeekPoison(ctx, 32)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, m := range msgs {
			fmt.Println(m.Text)
		}
		return nil
	}
	printPoisonTable(os.Stdout, msgs, total)
	return nil
}

func printPoisonTable(out io.Writer, msgs []worker.PoisonMessage, total int64) {
	if len(msgs) == 0 {
		fmt.Fprintln(out, "The poison queue is empty.")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tCLASS\tERROR\tDEQUEUES\tPOISONED AT")
	for _, m := range msgs {
		env := m.Envelope
		id, kind := requestIdentity(env)
		when := ""
		if !env.PoisonedAt.IsZero() {
			when = env.PoisonedAt.Local().Format(time.DateTime)
		}
		msg := env.Error.Message
		if env.Error.Code != "" && !strings.Contains(msg, env.Error.Code) {
			msg = env.Error.Code + ": " + msg
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", id, kind, env.Error.Class, clip(msg, 70), env.DequeueCount, when)
	}
	w.Flush()
	if total > int64(len(msgs)) {
		fmt.Fprintf(out, "(showing %d of about %d)\n", len(msgs), total)
	}
}

func poisonReplay(args []string) error {
	fs := flag.NewFlagSet("poison replay", flag.ContinueOnError)
	all := fs.Bool("all", false, "replay every poisoned message")
	id := fs.String("id", "", "replay the messages of this request id")
	class := fs.String("class", "", "replay the messages poisoned with this error class (transient, maps-rejected, invalid-request)")
	fs.Usage = usageFor(fs, "poison replay --all | --id ID | --class CLASS",
		"Put the original text of poisoned messages back on the request queue. Each poison message is\nremoved only after its text was re-enqueued. A failed result is replaced by the new outcome.",
		"mapsworker poison replay --class transient", "mapsworker poison replay --id order-42", "mapsworker poison replay --all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*all && *id == "" && *class == "" {
		fs.Usage()
		return &exitError{2, "say which messages: --all, --id or --class"}
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	match := func(env worker.Envelope) bool {
		reqID, _ := requestIdentity(env)
		return *all || (*id != "" && reqID == *id) || (*class != "" && env.Error.Class == *class)
	}
	res, err := a.storage.Replay(context.Background(), match, nil)
	fmt.Printf("replayed %d message(s)\n", res.Replayed)
	if err != nil {
		return fmt.Errorf("%s", shortErr(err))
	}
	return nil
}

func poisonPurge(args []string) error {
	fs := flag.NewFlagSet("poison purge", flag.ContinueOnError)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	fs.Usage = usageFor(fs, "poison purge [--yes]", "Delete every message in the poison queue.", "mapsworker poison purge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if !*yes {
		n, err := a.storage.Poison.Depth(ctx)
		if err != nil {
			return err // it names the queue
		}
		fmt.Printf("Delete about %d message(s) from %s? Type yes: ", n, a.storage.Poison.Name())
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return &exitError{1, "not purged"}
		}
	}
	if err := a.storage.PurgePoison(ctx); err != nil {
		return err
	}
	fmt.Println("purged")
	return nil
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
