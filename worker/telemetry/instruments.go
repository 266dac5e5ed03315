package telemetry

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// The metrics. Names and units are part of the README's contract: dashboards
// and alerts are built on them.
const (
	MetricMessages         = "mapsworker.messages"                    // {message}: kind, outcome, error.type
	MetricProcessing       = "mapsworker.message.processing.duration" // s: kind, outcome
	MetricEndToEnd         = "mapsworker.message.end_to_end.duration" // s: kind, outcome
	MetricMapsRequests     = "mapsworker.maps.requests"               // {request}: maps.api, http.response.status_code
	MetricMapsDuration     = "mapsworker.maps.request.duration"       // s: maps.api
	MetricMapsThrottled    = "mapsworker.maps.throttled"              // {request}: maps.api
	MetricQueueDepth       = "mapsworker.queue.depth"                 // {message}: queue
	MetricQueueOldestAge   = "mapsworker.queue.oldest_age"            // s: queue
	MetricBreakerOpen      = "mapsworker.breaker.open"                // 1 while dequeuing is paused
	MetricLeaseRenewals    = "mapsworker.lease.renewals"              // {renewal}
	MetricOutages          = "mapsworker.outages"                     // {outage}
	MetricMessagesInFlight = "mapsworker.messages.in_flight"          // {message}
)

// latencyBuckets suit both a Maps call (milliseconds) and a message that
// waited behind a backlog or an outage (minutes to an hour).
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

type instruments struct {
	messages                    metric.Int64Counter
	processing, endToEnd        metric.Float64Histogram
	mapsRequests, mapsThrottled metric.Int64Counter
	mapsDuration                metric.Float64Histogram
	depth                       metric.Int64ObservableGauge
	oldest                      metric.Float64ObservableGauge
	breaker                     metric.Int64ObservableGauge
	renewals, outages           metric.Int64ObservableCounter
	inFlight                    metric.Int64ObservableUpDownCounter
}

func (in *instruments) init(m metric.Meter, observe metric.Callback) error {
	var errs [13]error
	buckets := metric.WithExplicitBucketBoundaries(latencyBuckets...)
	in.messages, errs[0] = m.Int64Counter(MetricMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries settled, by request kind and outcome (and error class when one ended it)."))
	in.processing, errs[1] = m.Float64Histogram(MetricProcessing, metric.WithUnit("s"), buckets,
		metric.WithDescription("Time from a delivery's start to its settlement."))
	in.endToEnd, errs[2] = m.Float64Histogram(MetricEndToEnd, metric.WithUnit("s"), buckets,
		metric.WithDescription("Time from a message's enqueue to the settlement of this delivery."))
	in.mapsRequests, errs[3] = m.Int64Counter(MetricMapsRequests, metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests to Azure Maps, by API and status code."))
	in.mapsDuration, errs[4] = m.Float64Histogram(MetricMapsDuration, metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of HTTP requests to Azure Maps, by API."))
	in.mapsThrottled, errs[5] = m.Int64Counter(MetricMapsThrottled, metric.WithUnit("{request}"),
		metric.WithDescription("Azure Maps answers 429 Too Many Requests, by API."))
	in.depth, errs[6] = m.Int64ObservableGauge(MetricQueueDepth, metric.WithUnit("{message}"),
		metric.WithDescription("Approximate number of messages in the queue."))
	in.oldest, errs[7] = m.Float64ObservableGauge(MetricQueueOldestAge, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest visible message in the queue (0 when empty)."))
	in.breaker, errs[8] = m.Int64ObservableGauge(MetricBreakerOpen, metric.WithUnit("1"),
		metric.WithDescription("1 while dequeuing is paused for an outage of Maps or storage, else 0."))
	in.renewals, errs[9] = m.Int64ObservableCounter(MetricLeaseRenewals, metric.WithUnit("{renewal}"),
		metric.WithDescription("Lease renewals of messages worked on for longer than half the lease."))
	in.outages, errs[10] = m.Int64ObservableCounter(MetricOutages, metric.WithUnit("{outage}"),
		metric.WithDescription("Episodes of environment faults (each paused dequeuing)."))
	in.inFlight, errs[11] = m.Int64ObservableUpDownCounter(MetricMessagesInFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Messages being worked on now."))
	_, errs[12] = m.RegisterCallback(observe, in.depth, in.oldest, in.breaker, in.renewals, in.outages, in.inFlight)
	return errors.Join(errs[:]...)
}
