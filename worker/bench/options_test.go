package bench

import (
	"testing"

	"mapsworker/jobs"
)

func handlerOptions(sc scenario) *jobs.HandlerOptions {
	return &jobs.HandlerOptions{Batch: sc.batch}
}

// batchScenarios run with geocode batching on: a geocode-only backlog (at
// least 1,000 messages) and the mixed one, at concurrency 64.
func batchScenarios(b *testing.B, e *env, n int) []row {
	mixed := []string{jobs.KindGeocode, jobs.KindReverseGeocode, jobs.KindRoute}
	return []row{
		progress(e.engine(b, scenario{name: "geocode c=64 batch", n: max(n, 1000), conc: 64, batch: true, kinds: []string{jobs.KindGeocode}})),
		progress(e.engine(b, scenario{name: "geocode c=64 single", n: max(n, 1000), conc: 64, kinds: []string{jobs.KindGeocode}})),
		progress(e.engine(b, scenario{name: "mixed c=64 batch", n: n, conc: 64, batch: true, kinds: mixed})),
		progress(e.engine(b, scenario{name: "mixed c=64 Gen2 limits", n: n, conc: 64, batch: true, gen2: true, kinds: mixed})),
	}
}
