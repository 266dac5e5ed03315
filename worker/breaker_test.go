package worker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func okProbe(context.Context) error { return nil }

func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(time.Second, 8*time.Second)
		if wait, probe := b.due(); wait != 0 || probe != nil {
			t.Fatalf("closed breaker: wait %v probe %v", wait, probe != nil)
		}
		pause, first := b.trip(0, okProbe)
		if !first || pause != time.Second {
			t.Fatalf("first trip: pause %v first %v", pause, first)
		}
		if wait, probe := b.due(); wait <= 0 || probe != nil {
			t.Fatalf("open breaker: wait %v probe %v", wait, probe != nil)
		}
		time.Sleep(time.Second)
		wait, probe := b.due()
		if wait != 0 || probe == nil {
			t.Fatalf("after the pause: wait %v probe %v, want the probe", wait, probe != nil)
		}
		if d, open := b.remaining(); !open || d != 0 {
			t.Fatalf("while probing: remaining %v open %v, want open", d, open)
		}
		if !b.close() {
			t.Fatal("close did not report an episode")
		}
		if wait, probe := b.due(); wait != 0 || probe != nil {
			t.Fatalf("closed again: wait %v probe %v", wait, probe != nil)
		}
	})
}

// A burst of faults from every message in flight is one episode: the pause
// stays at its shortest. Only failed probes make it grow, up to the cap;
// Retry-After is honoured above the cap.
func TestBreakerGrowsPerEpisode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(time.Second, 8*time.Second)
		for i := range 16 {
			if pause, first := b.trip(0, okProbe); pause > time.Second || first != (i == 0) {
				t.Fatalf("fault %d of a burst: pause %v first %v", i+1, pause, first)
			}
		}
		want := []time.Duration{2, 4, 8, 8, 8}
		for i, w := range want {
			if p := b.failed(0); p != w*time.Second {
				t.Fatalf("failed probe %d: pause %v, want %v", i+1, p, w*time.Second)
			}
		}
		if p := b.failed(30 * time.Second); p != 30*time.Second {
			t.Fatalf("Retry-After 30s: pause %v", p)
		}
		b.close()
		if p, first := b.trip(0, okProbe); p != time.Second || !first {
			t.Fatalf("new episode: pause %v first %v", p, first)
		}
	})
}
