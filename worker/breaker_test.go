package worker

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	b := newBreaker(50*time.Millisecond, 200*time.Millisecond, time.Minute)
	if wait, probe := b.admit(); wait != 0 || probe {
		t.Fatalf("closed breaker: wait %v probe %v", wait, probe)
	}
	pause, first := b.trip(0)
	if !first || pause <= 0 || pause > 50*time.Millisecond {
		t.Fatalf("first trip: pause %v first %v", pause, first)
	}
	if wait, _ := b.admit(); wait <= 0 {
		t.Fatalf("open breaker admits at once")
	}
	if _, first := b.trip(0); first {
		t.Fatalf("second trip reported as first")
	}
	// Retry-After above the cap is honoured.
	if pause, _ := b.trip(time.Second); pause < 900*time.Millisecond {
		t.Fatalf("Retry-After 1s gave a pause of %v", pause)
	}
	b.openUntil = time.Now() // the pause is over
	if wait, probe := b.admit(); wait != 0 || !probe {
		t.Fatalf("after the pause: wait %v probe %v, want a probe", wait, probe)
	}
	if wait, probe := b.admit(); wait >= 0 || probe {
		t.Fatalf("while the probe is out: wait %v probe %v, want to wait for it", wait, probe)
	}
	if !b.succeed() {
		t.Fatal("succeed did not report the breaker open")
	}
	if wait, probe := b.admit(); wait != 0 || probe || b.open() != 0 {
		t.Fatalf("closed again: wait %v probe %v", wait, probe)
	}
}

func TestBreakerPauseGrowsToCap(t *testing.T) {
	b := newBreaker(time.Second, 8*time.Second, time.Minute)
	var last time.Duration
	for i := range 6 {
		b.openUntil = time.Time{}
		pause, _ := b.trip(0)
		if pause < last || pause > 8*time.Second+time.Millisecond {
			t.Fatalf("trip %d: pause %v after %v", i+1, pause, last)
		}
		last = pause
	}
	if last < 7*time.Second {
		t.Fatalf("pause did not reach the cap: %v", last)
	}
}

func TestOutageCountsDistinctMessages(t *testing.T) {
	var d outageDetector
	for range 10 {
		if d.failure("a") || d.failure("b") {
			t.Fatal("two messages failing again and again look like an outage")
		}
	}
	for _, id := range []string{"c", "d"} {
		d.failure(id)
	}
	if !d.failure("e") {
		t.Fatal("five different messages failing in a row is not an outage")
	}
	d.success()
	if d.failure("f") {
		t.Fatal("a success did not end the outage")
	}
}
