package worker

import (
	"sync"
	"time"
)

// The WebJobs dashboard keeps the first 200 lines of a run, and a
// continuous run lasts weeks. So the engine's info log is a budget: state
// changes are always logged (an outage begins or ends, a burst of poisoned
// messages, a stop), routine summaries back off, and what repeats is
// counted rather than logged. A 30-day busy run with a fault a day logs
// about 130 lines.
const (
	// summaryBurst is how many summaries come at SummaryInterval at the
	// start of a run, while an operator is likely watching.
	summaryBurst = 10
	// episodesPerHour is how many outage episodes an hour are logged, begin
	// and end; past it a flapping dependency is counted in the summaries.
	episodesPerHour = 6
	// repeatEvery is the quiet time after which an event that repeats
	// (poisoned messages, a lost lease, a handler panic) is logged again: a
	// burst of them is one line, and the summaries count the rest.
	repeatEvery = time.Hour
)

// summaryInterval is the time to the next routine summary, elapsed into
// the run: SummaryInterval for the first summaryBurst of them, then hourly
// to the end of the first day, then daily.
func summaryInterval(elapsed, base time.Duration) time.Duration {
	switch {
	case elapsed < summaryBurst*base:
		return base
	case elapsed < 24*time.Hour:
		return max(base, time.Hour)
	default:
		return max(base, 24*time.Hour)
	}
}

// logBudget decides which repeating lines are logged.
type logBudget struct {
	mu       sync.Mutex
	last     map[string]time.Time
	episodes []time.Time // outage episodes begun in the last hour
	logged   bool        // the current episode's beginning was logged
	// quiet counts, per kind of line, the lines not logged since the last
	// summary.
	quiet map[string]int64
}

// allow reports whether an event of kind begins a burst, and so is
// logged: the first, or the first after repeatEvery without one. The others
// are counted.
func (b *logBudget) allow(kind string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.last == nil {
		b.last = make(map[string]time.Time)
	}
	prev, seen := b.last[kind]
	b.last[kind] = now
	if seen && now.Sub(prev) < repeatEvery {
		b.countLocked(kind)
		return false
	}
	return true
}

func (b *logBudget) countLocked(kind string) {
	if b.quiet == nil {
		b.quiet = make(map[string]int64)
	}
	b.quiet[kind]++
}

// episodeBegins reports whether the beginning of an outage episode is
// logged: unless episodesPerHour began within the hour.
func (b *logBudget) episodeBegins() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	kept := b.episodes[:0]
	for _, t := range b.episodes {
		if now.Sub(t) < time.Hour {
			kept = append(kept, t)
		}
	}
	b.episodes = append(kept, now)
	b.logged = len(b.episodes) <= episodesPerHour
	if !b.logged {
		b.countLocked("outages")
	}
	return b.logged
}

// episodeEnds reports whether the end of the episode is logged: when its
// beginning was.
func (b *logBudget) episodeEnds() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.logged
	b.logged = false
	return was
}

// unlogged returns the counts of events not logged since the last call, as
// summary attributes (poisoned messages are in the summary already).
func (b *logBudget) unlogged() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var attrs []any
	for _, k := range [...]struct{ kind, attr string }{
		{"outages", "unloggedOutages"}, {"panics", "panics"}, {"lostLeases", "lostLeases"},
	} {
		if n := b.quiet[k.kind]; n > 0 {
			attrs = append(attrs, k.attr, n)
		}
	}
	clear(b.quiet)
	return attrs
}
