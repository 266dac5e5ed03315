package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// DescribeSummary renders the summary of a result of the given kind, as
// stored in its document, on one line for people: a position with its
// address and confidence, "no match", or a route's distance and durations.
func DescribeSummary(kind string, summary json.RawMessage) string {
	switch kind {
	case KindRoute:
		var s RouteSummary
		if json.Unmarshal(summary, &s) != nil {
			break
		}
		line := fmt.Sprintf("%.1f km, %s", s.DistanceInMeters/1000, seconds(s.DurationInSeconds))
		if s.DurationTrafficInSeconds != nil {
			line += fmt.Sprintf(" (%s with traffic)", seconds(*s.DurationTrafficInSeconds))
		}
		return line
	case KindGeocode, KindReverseGeocode:
		var s GeocodeSummary
		if json.Unmarshal(summary, &s) != nil {
			break
		}
		if s.Lat == nil || s.Lon == nil {
			return "no match"
		}
		line := fmt.Sprintf("%.6f, %.6f", *s.Lat, *s.Lon)
		if s.FormattedAddress != "" {
			line += "  " + s.FormattedAddress
		}
		if s.Confidence != "" {
			line += "  [" + s.Confidence + "]"
		}
		return line
	}
	return string(summary)
}

func seconds(s float64) time.Duration { return time.Duration(s) * time.Second }
