package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mapsworker/internal/settings"
)

// The deploy recipes cannot be applied here; these tests hold their names
// and numbers to the code's: every setting they set is one the worker reads
// (and the README lists) with a value it accepts, the command line is one
// `run` takes, the queue is the one the worker works, the drain fits in the
// platform's termination grace and the bounded run in its deadline, the
// exit statuses are the worker's, and the image is built by the Makefile.

const (
	repoRoot = "../../"
	// storageTail is the last storage calls after a cut drain (the
	// engine's StorageTimeout default): a stop takes at most the drain
	// budget plus this.
	storageTail = 10 * time.Second
	// startMargin is what a bounded run is allowed for starting (image
	// pull, the first token) within the platform's deadline.
	startMargin = time.Minute
	// containerAppsGrace is the time a Container Apps replica gets after
	// SIGTERM unless its template sets terminationGracePeriodSeconds.
	containerAppsGrace = 30 * time.Second
)

// manifestContainer is what a manifest says of the worker's container.
type manifestContainer struct {
	name  string
	image string
	args  []string
	env   map[string]string
}

// TestDeployContainerAppsJob checks deploy/containerapps-job.yaml.
func TestDeployContainerAppsJob(t *testing.T) {
	t.Parallel()
	docs := readManifest(t, "deploy/containerapps-job.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	job := docs[0]
	if dig(t, job, "type") != "Microsoft.App/jobs" {
		t.Errorf("type %v", dig(t, job, "type"))
	}
	conf := dig(t, job, "properties", "configuration")
	if dig(t, conf, "triggerType") != "Event" {
		t.Errorf("triggerType %v, want Event", dig(t, conf, "triggerType"))
	}
	c := containerOf(t, dig(t, job, "properties", "template", "containers", 0))
	s, limits := checkContainer(t, c)

	// The platform stops a replica at replicaTimeout; the run must end,
	// drain included, before.
	grace := containerAppsGrace
	if v, ok := dig(t, job, "properties", "template").(map[string]any)["terminationGracePeriodSeconds"]; ok {
		grace = seconds(t, v)
	}
	checkTiming(t, s.DrainTimeout, grace, limits.MaxDuration, seconds(t, dig(t, conf, "replicaTimeout")))

	rules := dig(t, conf, "eventTriggerConfig", "scale", "rules").([]any)
	if len(rules) != 1 {
		t.Fatalf("%d scale rules, want 1", len(rules))
	}
	rule := rules[0]
	if dig(t, rule, "type") != "azure-queue" {
		t.Errorf("scale rule type %v", dig(t, rule, "type"))
	}
	checkQueueMetadata(t, dig(t, rule, "metadata"), s.Queue, c.env["AzureWebJobsStorage__accountName"])

	// The rule reads the queue as the job's user-assigned identity, and
	// the worker runs as that identity (AZURE_CLIENT_ID).
	ids := dig(t, job, "identity", "userAssignedIdentities").(map[string]any)
	if _, ok := ids[fmt.Sprint(dig(t, rule, "identity"))]; !ok || dig(t, job, "identity", "type") != "UserAssigned" {
		t.Errorf("scale rule identity %v is not the job's user-assigned identity %v", dig(t, rule, "identity"), ids)
	}
	if c.env["AZURE_CLIENT_ID"] == "" {
		t.Errorf("AZURE_CLIENT_ID is not set: the worker would ask for a system-assigned identity")
	}
}

// TestDeployAKSScaledJob checks deploy/aks-scaledjob.yaml.
func TestDeployAKSScaledJob(t *testing.T) {
	t.Parallel()
	docs := readManifest(t, "deploy/aks-scaledjob.yaml")
	byKind := map[string]any{}
	for _, d := range docs {
		byKind[fmt.Sprint(dig(t, d, "kind"))] = d
	}
	sa, auth, sj := byKind["ServiceAccount"], byKind["TriggerAuthentication"], byKind["ScaledJob"]
	if sa == nil || auth == nil || sj == nil {
		t.Fatalf("want a ServiceAccount, a TriggerAuthentication and a ScaledJob, have %v", slices.Sorted(maps.Keys(byKind)))
	}
	jobSpec := dig(t, sj, "spec", "jobTargetRef")
	pod := dig(t, jobSpec, "template")
	c := containerOf(t, dig(t, pod, "spec", "containers", 0))
	s, limits := checkContainer(t, c)
	checkTiming(t, s.DrainTimeout, seconds(t, dig(t, pod, "spec", "terminationGracePeriodSeconds")),
		limits.MaxDuration, seconds(t, dig(t, jobSpec, "activeDeadlineSeconds")))

	// Workload identity: the pod is labelled for the webhook and runs as
	// the service account that names the identity.
	if dig(t, pod, "metadata", "labels", "azure.workload.identity/use") != "true" {
		t.Errorf(`pod label azure.workload.identity/use is not the string "true"`)
	}
	if dig(t, pod, "spec", "serviceAccountName") != dig(t, sa, "metadata", "name") {
		t.Errorf("the pod's service account is not the manifest's")
	}
	if dig(t, sa, "metadata", "annotations", "azure.workload.identity/client-id") == "" {
		t.Errorf("the service account names no identity")
	}
	if dig(t, auth, "spec", "podIdentity", "provider") != "azure-workload" {
		t.Errorf("KEDA does not read the queue with workload identity")
	}

	triggers := dig(t, sj, "spec", "triggers").([]any)
	if len(triggers) != 1 || dig(t, triggers[0], "type") != "azure-queue" {
		t.Fatalf("triggers %v, want one azure-queue", triggers)
	}
	checkQueueMetadata(t, dig(t, triggers[0], "metadata"), s.Queue, c.env["AzureWebJobsStorage__accountName"])
	if dig(t, triggers[0], "authenticationRef", "name") != dig(t, auth, "metadata", "name") {
		t.Errorf("the trigger does not use the TriggerAuthentication")
	}

	// Exit statuses: bad settings fail the Job at once (a retry cannot
	// help); a fault is retried. podFailurePolicy needs restartPolicy Never.
	if dig(t, pod, "spec", "restartPolicy") != "Never" {
		t.Errorf("restartPolicy %v, want Never", dig(t, pod, "spec", "restartPolicy"))
	}
	rule := dig(t, jobSpec, "podFailurePolicy", "rules", 0)
	codes := dig(t, rule, "onExitCodes", "values").([]any)
	if dig(t, rule, "action") != "FailJob" || dig(t, rule, "onExitCodes", "operator") != "In" ||
		dig(t, rule, "onExitCodes", "containerName") != c.name || !slices.Equal(codes, []any{int64(exitSettings)}) {
		t.Errorf("podFailurePolicy %v, want FailJob on exit %d of %s", rule, exitSettings, c.name)
	}
	if slices.Contains(codes, any(int64(exitFault))) || slices.Contains(codes, any(int64(exitDone))) {
		t.Errorf("podFailurePolicy fails the Job on a status worth retrying: %v", codes)
	}

	// The image's user, which runAsNonRoot can only check by number.
	uid, _ := imageUser(t)
	if dig(t, pod, "spec", "securityContext", "runAsNonRoot") != true || dig(t, pod, "spec", "securityContext", "runAsUser") != int64(uid) {
		t.Errorf("pod securityContext %v, want runAsNonRoot and the image's user %d", dig(t, pod, "spec", "securityContext"), uid)
	}
}

// TestDeployAppServiceAutoscale checks deploy/appservice-autoscale.json.
func TestDeployAppServiceAutoscale(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(repoRoot + "deploy/appservice-autoscale.json")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl any
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	s := defaultSettings(t)
	if q := dig(t, tmpl, "parameters", "queueName", "defaultValue"); q != s.Queue {
		t.Errorf("queueName defaults to %v, the worker's queue is %s", q, s.Queue)
	}
	if in, out := dig(t, tmpl, "parameters", "scaleInBelow", "defaultValue").(float64), dig(t, tmpl, "parameters", "scaleOutAbove", "defaultValue").(float64); in >= out {
		t.Errorf("scale in below %v is not under scale out above %v: the plan would flap", in, out)
	}
	queueURI := fmt.Sprint(dig(t, tmpl, "variables", "queueUri"))
	if !strings.Contains(queueURI, "'/services/queue/queues/', parameters('queueName')") || !strings.Contains(queueURI, "Microsoft.Storage/storageAccounts") {
		t.Errorf("queueUri %s is not the queue's resource id", queueURI)
	}
	res := dig(t, tmpl, "resources", 0)
	if dig(t, res, "type") != "Microsoft.Insights/autoscalesettings" || !strings.Contains(fmt.Sprint(dig(t, res, "properties", "targetResourceUri")), "Microsoft.Web/serverfarms") {
		t.Errorf("not an autoscale setting of an App Service plan")
	}
	var directions []string
	for _, r := range dig(t, res, "properties", "profiles", 0, "rules").([]any) {
		m := dig(t, r, "metricTrigger")
		if dig(t, m, "metricName") != "ApproximateMessageCount" || dig(t, m, "metricResourceUri") != "[variables('queueUri')]" {
			t.Errorf("rule on %v of %v, want ApproximateMessageCount of the request queue", dig(t, m, "metricName"), dig(t, m, "metricResourceUri"))
		}
		directions = append(directions, fmt.Sprint(dig(t, r, "scaleAction", "direction")))
	}
	if !slices.Equal(directions, []string{"Increase", "Decrease"}) {
		t.Errorf("rules scale %v, want out and in", directions)
	}
}

// TestDeployImage checks the Dockerfile: its build stage runs the
// Makefile's image-bin target, whose binary is static and is what the final
// stage copies; the final stage is distroless static (or scratch), runs as
// a non-root user by number, with the worker as its entry point.
func TestDeployImage(t *testing.T) {
	t.Parallel()
	df := readText(t, "Dockerfile")
	mk := readText(t, "Makefile")

	static := regexp.MustCompile(`(?m)^STATIC\s*=\s*(.*)$`).FindStringSubmatch(mk)
	recipe := regexp.MustCompile(`(?m)^image-bin:.*\n\t\$\(STATIC\) -o (\S+) \./cmd/mapsworker$`).FindStringSubmatch(mk)
	if static == nil || recipe == nil {
		t.Fatalf("the Makefile has no STATIC build or image-bin target")
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "-trimpath"} {
		if !strings.Contains(static[1], want) {
			t.Errorf("STATIC lacks %s: %s", want, static[1])
		}
	}
	if !regexp.MustCompile(`(?m)^RUN make image-bin\b`).MatchString(df) {
		t.Errorf("the Dockerfile does not build with `make image-bin`")
	}
	if !strings.Contains(df, "COPY --from=build /src/"+recipe[1]+" /mapsworker\n") {
		t.Errorf("the final stage does not copy %s, image-bin's output", recipe[1])
	}

	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 {
		t.Fatalf("%d stages, want a build stage and the final one", len(froms))
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readText(t, "go.mod"))
	if !strings.HasPrefix(froms[0][1], "golang:"+goVersion[1]+"-") {
		t.Errorf("build stage %s, want go.mod's Go %s", froms[0][1], goVersion[1])
	}
	if final := froms[1][1]; !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %s, want distroless static or scratch", final)
	}
	if uid, gid := imageUser(t); uid == 0 || gid == 0 {
		t.Errorf("the image runs as root")
	}
	if !strings.Contains(df, "\nENTRYPOINT [\"/mapsworker\"]\n") || !strings.Contains(df, "\nCMD [\"run\"]\n") {
		t.Errorf("entry point is not the worker's run")
	}
	if ignore := readText(t, ".dockerignore"); !strings.Contains(ignore, "azurite/node_modules") {
		t.Errorf(".dockerignore does not keep Azurite's 550 MB out of the build context")
	}
}

// checkContainer checks a container's settings against the code and the
// README, its command line against `run`'s flags, and returns the settings
// and limits it runs with.
func checkContainer(t *testing.T, c manifestContainer) (*settings.Settings, *runLimits) {
	t.Helper()
	read, listed := settingNames(t), readmeSettings(t)
	for name := range c.env {
		if !read[name] {
			t.Errorf("%s sets %s, which the worker does not read", c.name, name)
		}
		if !listed[name] {
			t.Errorf("%s sets %s, which README's settings table does not list", c.name, name)
		}
	}
	s, err := settings.Load(&settings.Options{Getenv: func(k string) string { return c.env[k] }, RequireMaps: true})
	if err != nil {
		t.Fatalf("the worker refuses the manifest's settings: %v", err)
	}
	if len(c.args) == 0 || c.args[0] != "run" {
		t.Fatalf("command %v, want run", c.args)
	}
	fs, limits := runFlags()
	fs.SetOutput(new(strings.Builder))
	if err := fs.Parse(c.args[1:]); err != nil || fs.NArg() != 0 {
		t.Fatalf("run refuses %v: %v", c.args, err)
	}
	if err := limits.validate(); err != nil {
		t.Fatalf("run refuses %v: %v", c.args, err)
	}
	if !limits.UntilEmpty || limits.MaxDuration == 0 {
		t.Errorf("%v: a job's run must end by itself (--until-empty) and before its deadline (--max-duration)", c.args)
	}
	if !strings.HasSuffix(c.image, "/mapsworker:${VERSION}") {
		t.Errorf("image %s is not the Dockerfile's", c.image)
	}
	return s, limits
}

// checkTiming: a stop (drain plus the last storage calls) fits in the
// termination grace, and a bounded run with its drain ends before the
// platform's deadline.
func checkTiming(t *testing.T, drain, grace, maxDuration, deadline time.Duration) {
	t.Helper()
	if drain+storageTail >= grace {
		t.Errorf("drain %v + %v of storage calls does not fit in the termination grace %v", drain, storageTail, grace)
	}
	if maxDuration+drain+storageTail+startMargin > deadline {
		t.Errorf("--max-duration %v + drain %v + %v + %v start is past the deadline %v", maxDuration, drain, storageTail, startMargin, deadline)
	}
}

// checkQueueMetadata: the scaler counts the queue the worker works, in the
// worker's account, and KEDA's metadata values are strings.
func checkQueueMetadata(t *testing.T, md any, queue, account string) {
	t.Helper()
	for k, v := range md.(map[string]any) {
		if _, ok := v.(string); !ok {
			t.Errorf("scaler metadata %s is %T, KEDA takes strings", k, v)
		}
	}
	if dig(t, md, "queueName") != queue {
		t.Errorf("the scaler counts queue %v, the worker works %s", dig(t, md, "queueName"), queue)
	}
	if account == "" || dig(t, md, "accountName") != account {
		t.Errorf("the scaler's account %v is not the worker's %q", dig(t, md, "accountName"), account)
	}
}

// settingNames are the environment variables settings.Load reads.
func settingNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	_, err := settings.Load(&settings.Options{RequireMaps: true, Getenv: func(k string) string {
		names[k] = true
		switch k {
		case "AzureWebJobsStorage__accountName":
			return "acct"
		case "AZURE_MAPS_CLIENT_ID":
			return "maps"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// readmeSettings are the names in README's settings table.
func readmeSettings(t *testing.T) map[string]bool {
	t.Helper()
	readme := readText(t, "README.md")
	_, section, _ := strings.Cut(readme, "\n## Settings\n")
	section, _, _ = strings.Cut(section, "\n## ")
	names := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		// A name is listed in its own row, or in the meaning of another
		// (AzureWebJobsStorage__accountName builds the two URIs).
		for _, m := range regexp.MustCompile("`([A-Za-z_][A-Za-z0-9_]*)`").FindAllStringSubmatch(cells[1]+cells[2], -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 10 {
		t.Fatalf("README's settings table not found (%d names)", len(names))
	}
	return names
}

// defaultSettings are the settings with nothing but the required ones set.
func defaultSettings(t *testing.T) *settings.Settings {
	t.Helper()
	s, err := settings.Load(&settings.Options{RequireMaps: true, Getenv: func(k string) string {
		return map[string]string{"AzureWebJobsStorage__accountName": "acct", "AZURE_MAPS_CLIENT_ID": "maps"}[k]
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// imageUser is the Dockerfile's USER uid:gid.
func imageUser(t *testing.T) (uid, gid int) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(readText(t, "Dockerfile"))
	if m == nil {
		t.Fatalf("the Dockerfile has no numeric USER uid:gid")
	}
	fmt.Sscan(m[1], &uid)
	fmt.Sscan(m[2], &gid)
	return uid, gid
}

func containerOf(t *testing.T, v any) manifestContainer {
	t.Helper()
	c := manifestContainer{name: fmt.Sprint(dig(t, v, "name")), image: fmt.Sprint(dig(t, v, "image")), env: map[string]string{}}
	for _, a := range dig(t, v, "args").([]any) {
		c.args = append(c.args, fmt.Sprint(a))
	}
	for _, e := range dig(t, v, "env").([]any) {
		value, ok := dig(t, e, "value").(string)
		if !ok {
			t.Errorf("env %v: value is not a string", dig(t, e, "name"))
		}
		c.env[fmt.Sprint(dig(t, e, "name"))] = value
	}
	return c
}

func readManifest(t *testing.T, name string) []any {
	t.Helper()
	docs, err := decodeYAML(readText(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return docs
}

func readText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(repoRoot + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dig walks a decoded document by keys and indexes; a missing step fails
// the test.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", path[:i], k)
			}
			if v, ok = m[k]; !ok {
				t.Fatalf("%v: no %q", path[:i], k)
			}
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				t.Fatalf("%v: no item %d", path[:i], k)
			}
			v = s[k]
		}
	}
	return v
}

// seconds reads a whole number of seconds.
func seconds(t *testing.T, v any) time.Duration {
	t.Helper()
	n, ok := v.(int64)
	if !ok {
		t.Fatalf("%v is not a whole number of seconds", v)
	}
	return time.Duration(n) * time.Second
}
