package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"mapsworker/internal/settings"
)

// lastCallsBudget is what a stop needs after the drain: the releases and
// deletes still to come share one last storage timeout, and the process
// must then exit.
const lastCallsBudget = 10*time.Second + 2*time.Second

// defaultStoppingWait is the WebJobs runner's stopping_wait_time when
// settings.job does not give one.
const defaultStoppingWait = 5 * time.Second

// checkDrain checks that a stop fits in the time the WebJobs runner gives
// it: MAPS_DRAIN_TIMEOUT, then the last storage calls, within settings.job's
// stopping_wait_time, after which the runner kills the process and
// whatever was in flight stays invisible until its lease ends. dir is the
// WebJob's folder (the executable's); without a settings.job there, the
// worker is not run as a WebJob and there is nothing to check.
func checkDrain(drain time.Duration, dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "settings.job"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &settings.Error{Name: "settings.job", Problem: "cannot be read: " + err.Error()}
	}
	var job struct {
		StoppingWaitTime *float64 `json:"stopping_wait_time"`
	}
	if err := json.Unmarshal(data, &job); err != nil {
		return &settings.Error{Name: "settings.job", Problem: "is not valid JSON: " + err.Error()}
	}
	wait := defaultStoppingWait
	if job.StoppingWaitTime != nil {
		wait = time.Duration(*job.StoppingWaitTime * float64(time.Second))
	}
	if drain+lastCallsBudget > wait {
		return &settings.Error{Name: "MAPS_DRAIN_TIMEOUT", Problem: fmt.Sprintf(
			"%v, plus %v for the last storage calls, does not fit in settings.job's stopping_wait_time of %v; lower it to at most %v or raise stopping_wait_time",
			drain, lastCallsBudget, wait, max(wait-lastCallsBudget, 0))}
	}
	return nil
}

// jobDir is the folder of the running executable: the WebJob's folder.
func jobDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}
