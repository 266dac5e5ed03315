package worker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is a log sink safe for the engine's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// A 30-day busy run with an outage a day, an hour of flapping, and a
// handler bug and poisoned messages throughout, logs within the 150 lines
// of its budget (the dashboard keeps 200); every outage that is not part of
// a flapping hour shows its beginning and its end.
func TestThirtyDaysFitTheDashboard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		e := New(nil, nil, nil, nil, &Options{Logger: slog.New(slog.NewTextHandler(&out, nil))})
		stop := e.startSummary()
		fault := Environmental("503 ServiceUnavailable", errors.New("Azure Maps answered 503"), 0)
		start := time.Now()
		for day := range 30 {
			for minute := range 24 * 60 {
				// Busy: messages succeed every minute; some are poisoned,
				// and a handler bug panics now and then.
				e.stats.Succeeded.Add(100)
				if minute%7 == 0 {
					e.stats.Poisoned.Add(1)
					if e.budget.allow("poisonLines") {
						e.log.Info("poisoning messages; they are in the poison queue with the reason")
					}
				}
				if minute%13 == 0 && e.budget.allow("panics") {
					e.log.Error("handler panicked")
				}
				switch {
				case minute == 600: // the day's outage, 20 minutes
					e.tripBreaker(0, fault, nil)
				case minute == 620:
					e.closeBreaker()
				case day == 3 && minute >= 120 && minute < 180: // a flapping hour
					e.tripBreaker(0, fault, nil)
					e.closeBreaker()
				}
				time.Sleep(time.Minute)
			}
		}
		stop()
		lines := out.lines()
		if len(lines) > 150 {
			for i, l := range lines {
				if i < 60 {
					t.Log(l)
				}
			}
			t.Fatalf("%d lines in 30 days, over the budget of 150", len(lines))
		}
		begins, ends := 0, 0
		for _, l := range lines {
			if strings.Contains(l, "pausing dequeues") {
				begins++
			}
			if strings.Contains(l, "environment recovered") {
				ends++
			}
		}
		// 30 daily outages and the first 6 of the flapping hour.
		if begins != 36 || ends != 36 {
			t.Fatalf("outages logged: %d begin, %d end lines; want 36 each", begins, ends)
		}
		t.Logf("%d lines for %v", len(lines), time.Since(start))
	})
}

func TestSummaryInterval(t *testing.T) {
	cases := []struct {
		elapsed time.Duration
		want    time.Duration
	}{
		{0, time.Minute},
		{9 * time.Minute, time.Minute},
		{10 * time.Minute, time.Hour},
		{23 * time.Hour, time.Hour},
		{24 * time.Hour, 24 * time.Hour},
		{20 * 24 * time.Hour, 24 * time.Hour},
	}
	for _, c := range cases {
		if got := summaryInterval(c.elapsed, time.Minute); got != c.want {
			t.Errorf("summaryInterval(%v) = %v, want %v", c.elapsed, got, c.want)
		}
	}
}
