package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mapsworker/jobs/maps/mapstest"
)

// shares returns the rate share each live instance reports.
func (te *testEnv) shares() map[string]string {
	te.t.Helper()
	sts, err := te.storage.Statuses(context.Background(), 0)
	if err != nil {
		te.t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range sts {
		if s.Live(time.Now()) {
			if m, ok := s.Extra.(map[string]any); ok {
				out[s.Instance], _ = m["rateShare"].(string)
			}
		}
	}
	return out
}

func allShare(m map[string]string, n int) bool {
	want := fmt.Sprintf("1/%d", n)
	for _, v := range m {
		if v != want {
			return false
		}
	}
	return len(m) == n
}

// Four instances share one account's limit, each taking a quarter: the
// emulator, throttling above the account's limit, throttles a handful at
// most. A killed instance's share goes back to the other three.
func TestAccountLimitIsShared(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	const limit = 40
	te.emu.SetRateLimit(mapstest.APIGeocode, limit)
	env := map[string]string{
		"MAPS_RATE_LIMITS": fmt.Sprintf("geocode=%d", limit), "MAPS_BATCH": "false",
		"MAPS_STATUS_INTERVAL": "1s", "MAPS_LEASE": "10s",
	}
	var ps []*proc
	for range 4 {
		ps = append(ps, te.start(env, "run"))
	}
	waitFor(t, 60*time.Second, "each instance at a quarter", func() bool { return allShare(te.shares(), 4) })
	te.emu.ResetStats()
	ids := te.sendGeocodes("sh", 400)
	waitFor(t, 60*time.Second, "a hundred results", func() bool { return te.resultCount() >= 100 })
	ps[0].cmd.Process.Kill()
	waitFor(t, 30*time.Second, "the three others at a third", func() bool { return allShare(te.shares(), 3) })
	waitFor(t, 2*time.Minute, "every result", func() bool { return te.resultCount() >= len(ids) })
	st := te.emu.Stats()
	for _, p := range ps[1:] {
		p.stop(t, 30*time.Second)
	}
	t.Logf("Maps: %d requests, %d answered 429; per second %v", st.Requests, st.Status429, st.PerSecond(mapstest.APIGeocode))
	if st.Status429 > 10 {
		t.Errorf("%d requests answered 429: the instances did not share the account's limit", st.Status429)
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Errorf("%d poisoned", len(env))
	}
}
