package mapstest

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Route Directions 2025-01-01 (POST /route/directions and
// /route/directions:batch): the request's checks, as strict as the
// service's published rules, and answers of the service's shape
// (PostRouteDirections and PostRouteDirectionsBatch examples; route.json's
// RouteDirectionsResponse for alternativeRoutes and the optional parts).

// routeIn is a Route Directions request body (also a batch item).
type routeIn struct {
	Type     string `json:"type"`
	Features []struct {
		Type     string `json:"type"`
		Geometry struct {
			Type        string    `json:"type"`
			Coordinates []float64 `json:"coordinates"`
		} `json:"geometry"`
		Properties struct {
			PointIndex *int   `json:"pointIndex"`
			PointType  string `json:"pointType"`
		} `json:"properties"`
	} `json:"features"`
	TravelMode            string         `json:"travelMode"`
	OptimizeRoute         string         `json:"optimizeRoute"`
	DepartAt              string         `json:"departAt"`
	ArriveAt              string         `json:"arriveAt"`
	Avoid                 []string       `json:"avoid"`
	RouteOutputOptions    []string       `json:"routeOutputOptions"`
	MaxRouteCount         *int64         `json:"maxRouteCount"`
	Heading               *int64         `json:"heading"`
	OptimizeWaypointOrder *bool          `json:"optimizeWaypointOrder"`
	VehicleSpec           *vehicleSpecIn `json:"vehicleSpec"`
	OptionalID            string         `json:"optionalId"`
}

// vehicleSpecIn is a truck's vehicleSpec.
type vehicleSpecIn struct {
	IsVehicleCommercial      *bool    `json:"isVehicleCommercial"`
	Length                   *float64 `json:"length"`
	Width                    *float64 `json:"width"`
	Height                   *float64 `json:"height"`
	Weight                   *int64   `json:"weight"`
	MaxSpeed                 *int64   `json:"maxSpeed"`
	AxleWeight               *int64   `json:"axleWeight"`
	AxleCount                *int64   `json:"axleCount"`
	LoadType                 []string `json:"loadType"`
	AdrTunnelRestrictionCode *string  `json:"adrTunnelRestrictionCode"`
}

// routeItem is a batch item: one that does not parse is answered with an
// inline error, as the service answers a bad item, without failing the
// batch.
type routeItem struct {
	in  routeIn
	bad bool
}

func (it *routeItem) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &it.in) != nil {
		it.bad = true
		var id struct {
			OptionalID string `json:"optionalId"`
		}
		_ = json.Unmarshal(b, &id)
		it.in = routeIn{OptionalID: id.OptionalID}
	}
	return nil
}

// Limits and values of the 2025-01-01 request.
const (
	maxWaypoints        = 25  // driving, walking
	maxTruckWaypoints   = 150 // truck; no viaWaypoints
	maxViaPerLeg        = 10  // viaWaypoints between two waypoints
	maxRoutes           = 3   // maxRouteCount
	maxAlternativeStops = 2   // driving alternatives: stops besides origin and destination
	maxVehicleMeasure   = 1_000_000
	maxVehicleSpeed     = 250
	maxHeadingDegrees   = 359
)

// The parts of an answer routeOutputOptions asks for.
const (
	outputRouteSummary = 1 << iota
	outputRoutePath
	outputItinerary
	outputRegionSummaries
)

var (
	routeOptimizations = map[string][]string{ // value: modes (nil: all)
		"shortest":                          nil,
		"fastestWithoutTraffic":             nil,
		"fastestAvoidClosureWithoutTraffic": {"driving"},
		"fastestWithTraffic":                {"driving", "truck"},
	}
	avoidTruckOnly = map[string]bool{ // every avoid value: truck only?
		"limitedAccessHighways": false, "tollRoads": false, "ferries": false, "borderCrossings": false,
		"tunnels": true, "lowEmissionZones": true, "unpavedRoads": true,
	}
	routeOutputBits = map[string]int{
		"routeSummary": outputRouteSummary, "routePath": outputRoutePath,
		"itinerary": outputItinerary, "regionTravelSummary": outputRegionSummaries,
	}
	hazmatLoadTypes = []string{
		"USHazmatClass1", "USHazmatClass2", "USHazmatClass3", "USHazmatClass4", "USHazmatClass5",
		"USHazmatClass6", "USHazmatClass7", "USHazmatClass8", "USHazmatClass9",
		"otherHazmatExplosive", "otherHazmatGeneral", "otherHazmatHarmfulToWater",
	}
)

// routePlan is a validated route request.
type routePlan struct {
	mode     string
	speed    float64 // m/s
	traffic  bool
	depart   time.Time
	arrive   time.Time // set instead of depart for arriveAt
	points   []routePoint
	outputs  int // outputRoute… bits
	routes   int // 1 + alternatives
	avoid    []string
	optimize bool // optimizeWaypointOrder
	lang     *phrases
}

type routePoint struct {
	lon, lat float64
	via      bool
	input    int
}

// plan validates r, returning a refusal message ("" if none).
func (r *routeIn) plan() (routePlan, string) {
	var p routePlan
	if r.Type != "FeatureCollection" || len(r.Features) == 0 {
		return p, "Request body is invalid or empty"
	}
	switch r.TravelMode {
	case "", "driving":
		p.mode, p.speed, p.traffic = "driving", 13.4, true
	case "truck":
		p.mode, p.speed, p.traffic = "truck", 11.1, true
	case "walking":
		p.mode, p.speed = "walking", 1.4
	default:
		return p, "The value '" + r.TravelMode + "' is not valid for travelMode; use driving, truck or walking."
	}
	if r.OptimizeRoute != "" {
		modes, ok := routeOptimizations[r.OptimizeRoute]
		switch {
		case !ok:
			return p, "The value '" + r.OptimizeRoute + "' is not valid for optimizeRoute; use shortest, fastestWithoutTraffic, fastestAvoidClosureWithoutTraffic or fastestWithTraffic."
		case modes != nil && !slices.Contains(modes, p.mode):
			return p, "optimizeRoute '" + r.OptimizeRoute + "' is only supported for " + strings.Join(modes, " and ") + " travelMode."
		}
	}
	if msg := r.planTimes(&p); msg != "" {
		return p, msg
	}
	if msg := r.planPoints(&p); msg != "" {
		return p, msg
	}
	if msg := r.planOptions(&p); msg != "" {
		return p, msg
	}
	if r.VehicleSpec != nil {
		if p.mode != "truck" {
			return p, "vehicleSpec is only supported for truck travelMode."
		}
		if msg := r.VehicleSpec.check(); msg != "" {
			return p, msg
		}
		if v := r.VehicleSpec.MaxSpeed; v != nil && *v > 0 {
			p.speed = math.Min(p.speed, float64(*v)/3.6)
		}
	}
	return p, ""
}

func (r *routeIn) planTimes(p *routePlan) string {
	if r.DepartAt != "" && r.ArriveAt != "" {
		return "departAt and arriveAt cannot be used together."
	}
	for _, c := range [...]struct {
		name, v string
		t       *time.Time
	}{{"departAt", r.DepartAt, &p.depart}, {"arriveAt", r.ArriveAt, &p.arrive}} {
		if c.v == "" {
			continue
		}
		t, ok := parseDateTime(c.v)
		if !ok {
			return c.name + " must be an RFC 3339 date-time, e.g. 2026-12-01T08:00:00Z."
		}
		*c.t = t
	}
	return ""
}

// parseDateTime parses an RFC 3339 date-time; without an offset it is UTC,
// as the service assumes.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range [...]string{time.RFC3339, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (r *routeIn) planPoints(p *routePlan) string {
	waypoints, run := 0, 0
	p.points = make([]routePoint, len(r.Features))
	for i := range r.Features {
		f := &r.Features[i]
		c := f.Geometry.Coordinates
		if f.Type != "Feature" || f.Geometry.Type != "Point" || len(c) != 2 {
			return "Feature " + strconv.Itoa(i) + " must be a GeoJSON Point feature with coordinates [longitude, latitude]."
		}
		if !validLonLat(c[0], c[1]) {
			return "The coordinates of feature " + strconv.Itoa(i) + " are out of range: longitude must be within [-180, 180] and latitude within [-90, 90]."
		}
		via := false
		switch f.Properties.PointType {
		case "", "waypoint":
			waypoints++
			run = 0
		case "viaWaypoint":
			if p.mode == "truck" {
				return "viaWaypoints are not supported for truck travelMode."
			}
			if run++; run > maxViaPerLeg {
				return "At most " + strconv.Itoa(maxViaPerLeg) + " viaWaypoints are allowed between two waypoints."
			}
			via = true
		default:
			return "pointType of feature " + strconv.Itoa(i) + " must be waypoint or viaWaypoint."
		}
		p.points[i] = routePoint{lon: c[0], lat: c[1], via: via, input: i}
	}
	limit := maxWaypoints
	if p.mode == "truck" {
		limit = maxTruckWaypoints
	}
	switch {
	case waypoints < 2:
		return "At least 2 waypoints are required; the request has " + strconv.Itoa(waypoints) + "."
	case waypoints > limit:
		return "At most " + strconv.Itoa(limit) + " waypoints are allowed for travelMode " + p.mode + "; the request has " + strconv.Itoa(waypoints) + "."
	case p.points[0].via || p.points[len(p.points)-1].via:
		return "The first and last points must be waypoints, not viaWaypoints."
	}
	return ""
}

func (r *routeIn) planOptions(p *routePlan) string {
	for _, a := range r.Avoid {
		truckOnly, ok := avoidTruckOnly[a]
		switch {
		case !ok:
			return "The value '" + a + "' is not valid for avoid; use limitedAccessHighways, tollRoads, ferries, tunnels, borderCrossings, lowEmissionZones or unpavedRoads."
		case p.mode == "walking":
			return "avoid is only supported for driving and truck travelMode."
		case truckOnly && p.mode != "truck":
			return "avoid '" + a + "' is only supported for truck travelMode."
		}
		if !slices.Contains(p.avoid, a) {
			p.avoid = append(p.avoid, a)
		}
	}
	if r.RouteOutputOptions == nil {
		p.outputs = outputItinerary // the service's default
	}
	for _, o := range r.RouteOutputOptions {
		bit, ok := routeOutputBits[o]
		switch {
		case !ok:
			return "The value '" + o + "' is not valid for routeOutputOptions; use routeSummary, routePath, itinerary or regionTravelSummary."
		case bit == outputRegionSummaries && p.mode == "truck":
			return "routeOutputOptions 'regionTravelSummary' is only supported for driving and walking travelMode."
		}
		p.outputs |= bit
	}
	p.routes = 1
	if r.MaxRouteCount != nil {
		n := *r.MaxRouteCount
		if n < 1 || n > maxRoutes {
			return "The value of 'maxRouteCount' must be between 1 and " + strconv.Itoa(maxRoutes) + "."
		}
		if n > 1 {
			switch p.mode {
			case "walking":
				return "maxRouteCount is only supported for driving and truck travelMode."
			case "driving":
				stops := 0
				for _, pt := range p.points {
					if !pt.via {
						stops++
					}
				}
				if stops > maxAlternativeStops+2 {
					return "maxRouteCount greater than 1 supports driving routes with at most " + strconv.Itoa(maxAlternativeStops) + " waypoints besides the origin and destination."
				}
				if len(p.avoid) > 0 {
					return "maxRouteCount greater than 1 cannot be used with avoid for driving travelMode."
				}
			}
		}
		p.routes = int(n)
	}
	if h := r.Heading; h != nil && (*h < 0 || *h > maxHeadingDegrees) {
		return "The value of 'heading' must be between 0 and " + strconv.Itoa(maxHeadingDegrees) + "."
	}
	if o := r.OptimizeWaypointOrder; o != nil && *o {
		if p.mode != "truck" {
			return "optimizeWaypointOrder is only supported for truck travelMode."
		}
		p.optimize = true
	}
	return ""
}

// check validates a vehicleSpec's values against their documented ranges.
func (v *vehicleSpecIn) check() string {
	for _, m := range [...]struct {
		name string
		v    *float64
	}{{"length", v.Length}, {"width", v.Width}, {"height", v.Height}} {
		if m.v != nil && (*m.v < 0 || *m.v > maxVehicleMeasure || math.IsNaN(*m.v)) {
			return "The value of 'vehicleSpec." + m.name + "' must be between 0 and 1000000."
		}
	}
	for _, m := range [...]struct {
		name string
		v    *int64
		max  int64
	}{{"weight", v.Weight, maxVehicleMeasure}, {"maxSpeed", v.MaxSpeed, maxVehicleSpeed}, {"axleWeight", v.AxleWeight, maxVehicleMeasure}, {"axleCount", v.AxleCount, math.MaxInt32}} {
		if m.v != nil && (*m.v < 0 || *m.v > m.max) {
			return "The value of 'vehicleSpec." + m.name + "' must be between 0 and " + strconv.FormatInt(m.max, 10) + "."
		}
	}
	for _, t := range v.LoadType {
		if !slices.Contains(hazmatLoadTypes, t) {
			return "The value '" + t + "' is not valid for vehicleSpec.loadType."
		}
	}
	if c := v.AdrTunnelRestrictionCode; c != nil && !slices.Contains([]string{"B", "C", "D", "E"}, *c) {
		return "The value '" + *c + "' is not valid for vehicleSpec.adrTunnelRestrictionCode; use B, C, D or E."
	}
	return ""
}

// haversine returns the great-circle distance in meters.
func haversine(lon1, lat1, lon2, lat2 float64) float64 {
	const r = 6371008.8
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// roadFactor turns straight-line distance into a plausible road distance.
const roadFactor = 1.25

type leg struct {
	from, to             int // indexes into the visiting order
	meters               float64
	seconds, trafficSecs int64
}

// visitOrder returns the order in which the route visits p's points: as
// given, or with optimizeWaypointOrder the waypoints between the first and
// the last by nearest neighbour (truck routes have no viaWaypoints).
func (p *routePlan) visitOrder() []int {
	order := make([]int, len(p.points))
	for i := range order {
		order[i] = i
	}
	if !p.optimize || len(order) < 4 {
		return order
	}
	for i := 1; i < len(order)-2; i++ {
		cur := p.points[order[i-1]]
		best, bestD := i, math.Inf(1)
		for k := i; k < len(order)-1; k++ {
			q := p.points[order[k]]
			if d := haversine(cur.lon, cur.lat, q.lon, q.lat); d < bestD {
				best, bestD = k, d
			}
		}
		order[i], order[best] = order[best], order[i]
	}
	return order
}

// writeRouteAnswer appends the members of a route answer after its "type":
// the best route's features and, with maxRouteCount above 1, the
// alternatives, each a FeatureCollection in alternativeRoutes.
func writeRouteAnswer(j *jbuf, p *routePlan) {
	order := p.visitOrder()
	writeRoute(j, p, order, 0)
	if p.routes < 2 {
		return
	}
	j.raw(`,"alternativeRoutes":[`)
	for k := 1; k < p.routes; k++ {
		if k > 1 {
			j.raw(",")
		}
		j.raw(`{"type":"FeatureCollection",`)
		writeRoute(j, p, order, k)
		j.raw(`}`)
	}
	j.raw(`]`)
}

// writeRoute appends the "features" of route alt (0 the best) of p: the
// waypoints (with itinerary or routePath), maneuver points (itinerary), via
// points, and the RoutePath with its totals, its legs unless only a summary
// was asked for, and its line with routePath.
func writeRoute(j *jbuf, p *routePlan, order []int, alt int) {
	// Each alternative is longer and slower than the one before; each
	// avoided road type costs a detour.
	factor := roadFactor * (1 + 0.08*float64(alt)) * (1 + 0.02*float64(len(p.avoid)))
	var legs []leg
	cur := leg{}
	for i := 1; i < len(order); i++ {
		a, b := p.points[order[i-1]], p.points[order[i]]
		cur.meters += factor * haversine(a.lon, a.lat, b.lon, b.lat)
		if !b.via {
			cur.to = i
			legs = append(legs, cur)
			cur = leg{from: i}
		}
	}
	var total leg
	for i := range legs {
		l := &legs[i]
		l.meters = math.Round(l.meters*10) / 10
		l.seconds = int64(math.Ceil(l.meters / p.speed))
		l.trafficSecs = l.seconds
		if p.traffic {
			l.trafficSecs += l.seconds / 10
		}
		total.meters += l.meters
		total.seconds += l.seconds
		total.trafficSecs += l.trafficSecs
	}
	depart := p.depart
	if !p.arrive.IsZero() {
		depart = p.arrive.Add(-time.Duration(total.trafficSecs) * time.Second)
	}

	points := p.outputs&(outputItinerary|outputRoutePath) != 0
	itinerary := p.outputs&outputItinerary != 0
	j.raw(`"features":[`)
	n := 0 // features written
	sep := func() {
		if n > 0 {
			j.raw(",")
		}
		n++
	}
	if points {
		li := 0
		for i, idx := range order {
			pt := p.points[idx]
			sep()
			j.raw(`{"type":"Feature","geometry":{"type":"Point","coordinates":`).lonLat(pt.lon, pt.lat).raw(`}`)
			if pt.via {
				// Azure Maps echoes via points as bare Point features.
				j.raw(`}`)
				continue
			}
			var meters float64
			var secs int64
			legIndex := li
			if li < len(legs) && legs[li].from == i {
				meters, secs = legs[li].meters, legs[li].seconds
				li++
			} else {
				legIndex = len(legs) - 1 // the arrival belongs to the last leg
			}
			j.raw(`,"properties":{"type":"Waypoint","routePathPoint":{"legIndex":`).int(int64(legIndex)).
				raw(`,"pointIndex":`).int(int64(i)).
				raw(`},"order":{"inputIndex":`).int(int64(pt.input))
			if p.optimize {
				j.raw(`,"optimizedIndex":`).int(int64(i))
			}
			j.raw(`}`)
			if itinerary {
				writeWaypointInstruction(j, p, order, i, legIndex)
			}
			j.raw(`,"distanceInMeters":`).num(meters, 1).
				raw(`,"durationInSeconds":`).int(secs).
				raw(`,"travelMode":"`).raw(p.mode).raw(`"}}`)
			if itinerary && li > 0 && li <= len(legs) && legs[li-1].from == i {
				sep()
				writeManeuver(j, p, order, legs[li-1], li-1)
			}
		}
	}

	// The RoutePath. Its bbox is written [south, west, north, east], as the
	// 2025-01-01 service does (see the PostRouteDirections example), not in
	// GeoJSON's lon-first order.
	sep()
	j.raw(`{"type":"Feature","geometry":{"type":"MultiLineString","coordinates":[`)
	if p.outputs&outputRoutePath != 0 {
		minLon, minLat, maxLon, maxLat := 180.0, 90.0, -180.0, -90.0
		j.raw(`[`)
		for i, idx := range order {
			pt := p.points[idx]
			if i > 0 {
				j.raw(",")
				if i == 1 && alt > 0 {
					// An alternative leaves the best route's line.
					a := p.points[order[0]]
					mlon, mlat := (a.lon+pt.lon)/2, (a.lat+pt.lat)/2+0.004*float64(alt)
					j.lonLat(mlon, mlat).raw(",")
					minLat, maxLat = math.Min(minLat, mlat), math.Max(maxLat, mlat)
				}
			}
			j.lonLat(pt.lon, pt.lat)
			minLon, maxLon = math.Min(minLon, pt.lon), math.Max(maxLon, pt.lon)
			minLat, maxLat = math.Min(minLat, pt.lat), math.Max(maxLat, pt.lat)
		}
		j.raw(`]]},"bbox":[`).coord(minLat).raw(",").coord(minLon).raw(",").coord(maxLat).raw(",").coord(maxLon).raw(`]`)
	} else {
		j.raw(`]}`)
	}
	j.raw(`,"properties":{"type":"RoutePath","distanceInMeters":`).num(total.meters, 1).
		raw(`,"durationInSeconds":`).int(total.seconds).
		raw(`,"durationTrafficInSeconds":`).int(total.trafficSecs)
	withLegs := p.outputs&(outputItinerary|outputRoutePath|outputRegionSummaries) != 0
	if withLegs {
		j.raw(`,"trafficDataUsed":"None","trafficCongestion":"`)
		if total.trafficSecs > total.seconds {
			j.raw(`Mild"`)
		} else {
			j.raw(`None"`)
		}
	}
	if !depart.IsZero() {
		j.raw(`,"departureAt":"`).raw(depart.Format(timeLayout)).
			raw(`","arrivalAt":"`).raw(depart.Add(time.Duration(total.trafficSecs) * time.Second).Format(timeLayout)).raw(`"`)
	}
	if p.optimize {
		j.raw(`,"optimizedWaypoints":[`)
		for i, idx := range order {
			if i > 0 {
				j.raw(",")
			}
			j.raw(`{"inputIndex":`).int(int64(p.points[idx].input)).raw(`,"optimizedIndex":`).int(int64(i)).raw(`}`)
		}
		j.raw(`]`)
	}
	if withLegs {
		j.raw(`,"legs":[`)
		t := depart
		for i, l := range legs {
			if i > 0 {
				j.raw(",")
			}
			j.raw(`{"description":`).str(legDescription(p, order, l)).
				raw(`,"routePathRange":{"range":[`).int(int64(l.from)).raw(",").int(int64(l.to)).
				raw(`],"legIndex":`).int(int64(i)).
				raw(`},"distanceInMeters":`).num(l.meters, 1).
				raw(`,"durationInSeconds":`).int(l.seconds).
				raw(`,"durationTrafficInSeconds":`).int(l.trafficSecs)
			if !t.IsZero() {
				end := t.Add(time.Duration(l.trafficSecs) * time.Second)
				j.raw(`,"departureAt":"`).raw(t.Format(timeLayout)).raw(`","arrivalAt":"`).raw(end.Format(timeLayout)).raw(`"`)
				t = end
			}
			if p.outputs&outputRegionSummaries != 0 {
				writeRegionTravelSummary(j, p, order, l)
			}
			j.raw(`}`)
		}
		j.raw(`]`)
	}
	j.raw(`}}]`)
}

// writeRegionTravelSummary appends a leg's regionTravelSummary: the whole
// leg in the country and state of its start.
func writeRegionTravelSummary(j *jbuf, p *routePlan, order []int, l leg) {
	a := p.points[order[l.from]]
	pl := nearestPlace(a.lon, a.lat)
	toll := 0.0
	if p.mode == "driving" && !slices.Contains(p.avoid, "tollRoads") {
		toll = math.Round(l.meters*0.1*10) / 10
	}
	j.raw(`,"regionTravelSummary":{"countryRegion":{"name":`).str(pl.country).
		raw(`},"adminDistricts":[{"longName":`).str(pl.adminName).
		raw(`,"distanceInMeters":`).num(l.meters, 1).
		raw(`,"durationInSeconds":`).int(l.seconds).
		raw(`,"durationTrafficInSeconds":`).int(l.trafficSecs).
		raw(`,"tollDistanceInMeters":`).num(toll, 1).
		raw(`}],"distanceInMeters":`).num(l.meters, 1).
		raw(`,"durationInSeconds":`).int(l.seconds).
		raw(`,"durationTrafficInSeconds":`).int(l.trafficSecs).
		raw(`,"tollDistanceInMeters":`).num(toll, 1).raw(`}`)
}

// writeWaypointInstruction appends the itinerary members of the Waypoint
// at position i of the visiting order: leaving the origin, reaching a stop,
// arriving.
func writeWaypointInstruction(j *jbuf, p *routePlan, order []int, i, legIndex int) {
	pt := p.points[order[i]]
	street := streetAt(pt)
	var maneuver, text string
	dir := "north"
	switch {
	case i == 0:
		next := p.points[order[1]]
		dir = compass(pt, next)
		maneuver, text = "DepartStart", p.lang.depart(p.lang.dir(dir), street)
	case i == len(order)-1:
		dir = compass(p.points[order[i-1]], pt)
		maneuver, text = "ArriveFinish", p.lang.finish
	default:
		dir = compass(p.points[order[i-1]], pt)
		maneuver, text = "ArriveIntermediate", p.lang.stop
	}
	j.raw(`,"compassDirection":"`).raw(dir).
		raw(`","instruction":{"formattedText":`).str(text).
		raw(`,"maneuverType":"`).raw(maneuver).
		raw(`","text":`).str(text).
		raw(`},"sideOfStreet":"Unknown"`)
	if i == 0 {
		j.raw(`,"towardsRoadName":`).str(street)
	}
	j.raw(`,"steps":[{"routePathRange":{"legIndex":`).int(int64(legIndex)).
		raw(`,"range":[`).int(int64(i)).raw(",").int(int64(min(i+1, len(order)-1))).
		raw(`]},"maneuverType":"`).raw(maneuver).raw(`","names":[`).str(street).raw(`]}]`)
}

// writeManeuver appends the ManeuverPoint feature halfway along a leg.
func writeManeuver(j *jbuf, p *routePlan, order []int, l leg, legIndex int) {
	a, b := p.points[order[l.from]], p.points[order[l.to]]
	mid := routePoint{lon: (a.lon + b.lon) / 2, lat: (a.lat + b.lat) / 2}
	street := streetAt(b)
	dir := compass(a, b)
	text := p.lang.cont(street)
	j.raw(`{"type":"Feature","geometry":{"type":"Point","coordinates":`).lonLat(mid.lon, mid.lat).
		raw(`},"properties":{"type":"ManeuverPoint","routePathPoint":{"legIndex":`).int(int64(legIndex)).
		raw(`,"pointIndex":`).int(int64(l.from)).
		raw(`},"compassDirection":"`).raw(dir).
		raw(`","instruction":{"formattedText":`).str(text).
		raw(`,"maneuverType":"Continue","text":`).str(text).
		raw(`},"sideOfStreet":"Unknown","distanceInMeters":`).num(l.meters/2, 1).
		raw(`,"durationInSeconds":`).int(l.seconds / 2).
		raw(`,"steps":[{"routePathRange":{"legIndex":`).int(int64(legIndex)).
		raw(`,"range":[`).int(int64(l.from)).raw(",").int(int64(l.to)).
		raw(`]},"maneuverType":"Continue","names":[`).str(street).raw(`]}]`).
		raw(`,"travelMode":"`).raw(p.mode).raw(`"}}`)
}

// streetAt names a street near pt.
func streetAt(pt routePoint) string {
	pl := nearestPlace(pt.lon, pt.lat)
	h := fnvFloat(fnvFloat(fnvOffset, math.Round(pt.lon*1e4)), math.Round(pt.lat*1e4))
	return pl.streets[h%uint64(len(pl.streets))]
}

// compass is the direction from a to b, one of eight.
func compass(a, b routePoint) string {
	dx := (b.lon - a.lon) * math.Cos((a.lat+b.lat)/2*math.Pi/180)
	dy := b.lat - a.lat
	deg := math.Mod(math.Atan2(dx, dy)*180/math.Pi+360, 360)
	return compassNames[int(math.Round(deg/45))%8]
}

var compassNames = [8]string{"north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"}

// phrases are the itinerary's instructions in one language (Accept-Language).
type phrases struct {
	depart func(dir, street string) string
	cont   func(street string) string
	stop   string
	finish string
	dirs   [8]string // compassNames in this language
}

func (l *phrases) dir(name string) string {
	for i, n := range compassNames {
		if n == name {
			return l.dirs[i]
		}
	}
	return name
}

// languages are those the emulator writes instructions in; others get
// English, as the service answers in its default language.
var languages = map[string]*phrases{
	"en": {
		depart: func(d, s string) string { return "Head " + d + " on " + s },
		cont:   func(s string) string { return "Continue on " + s },
		stop:   "Arrive at your stop", finish: "Arrive at your destination",
		dirs: compassNames,
	},
	"de": {
		depart: func(d, s string) string { return "Richtung " + d + " auf " + s + " starten" },
		cont:   func(s string) string { return "Weiter auf " + s },
		stop:   "Sie haben Ihren Zwischenstopp erreicht", finish: "Sie haben Ihr Ziel erreicht",
		dirs: [8]string{"Norden", "Nordosten", "Osten", "Südosten", "Süden", "Südwesten", "Westen", "Nordwesten"},
	},
	"fr": {
		depart: func(d, s string) string { return "Prendre la direction " + d + " sur " + s },
		cont:   func(s string) string { return "Continuer sur " + s },
		stop:   "Vous avez atteint votre étape", finish: "Vous êtes arrivé à destination",
		dirs: [8]string{"nord", "nord-est", "est", "sud-est", "sud", "sud-ouest", "ouest", "nord-ouest"},
	},
	"es": {
		depart: func(d, s string) string { return "Diríjase al " + d + " por " + s },
		cont:   func(s string) string { return "Continúe por " + s },
		stop:   "Ha llegado a su parada", finish: "Ha llegado a su destino",
		dirs: [8]string{"norte", "noreste", "este", "sureste", "sur", "suroeste", "oeste", "noroeste"},
	},
}

// language picks the phrases for an Accept-Language header: its first
// tag's primary language, else English.
func language(header string) *phrases {
	tag, _, _ := strings.Cut(header, ",")
	tag, _, _ = strings.Cut(tag, ";")
	primary, _, _ := strings.Cut(strings.TrimSpace(tag), "-")
	if l, ok := languages[strings.ToLower(primary)]; ok {
		return l
	}
	return languages["en"]
}

// timeLayout is RFC 3339 with a numeric zone, as in Azure Maps answers
// ("2023-08-28T18:00:00+00:00").
const timeLayout = "2006-01-02T15:04:05-07:00"

func legDescription(p *routePlan, order []int, l leg) string {
	a, b := p.points[order[l.from]], p.points[order[l.to]]
	pa, pb := nearestPlace(a.lon, a.lat), nearestPlace(b.lon, b.lat)
	if pa == pb {
		return pa.streets[0] + ", " + pa.streets[len(pa.streets)-1]
	}
	return pa.streets[0] + ", " + pb.streets[0]
}

func (s *Server) route(w http.ResponseWriter, c *request) {
	var r routeIn
	if len(c.body) == 0 || json.Unmarshal(c.body, &r) != nil {
		s.reply(w, c.st, http.StatusBadRequest, ctJSON, bodyInvalid)
		return
	}
	p, msg := r.plan()
	if msg != "" {
		s.badRequest(w, c.st, msg)
		return
	}
	p.lang = language(c.header.Get("Accept-Language"))
	s.replyFeatures(w, c.st, func(j *jbuf) { writeRouteAnswer(j, &p) })
}

func (s *Server) routeBatch(w http.ResponseWriter, c *request) {
	lang := language(c.header.Get("Accept-Language")) // one header for every item
	serveBatch(s, w, c.st, c.body, func(it *routeItem) string { return it.in.OptionalID },
		func(j *jbuf, it *routeItem) (code, msg string) {
			if it.bad {
				return codeBadRequest, "The batch item is not a valid Route Directions request body."
			}
			p, msg := it.in.plan()
			if msg != "" {
				return codeBadRequest, msg
			}
			p.lang = lang
			j.raw(`"type":"FeatureCollection",`)
			writeRouteAnswer(j, &p)
			return "", ""
		})
}
