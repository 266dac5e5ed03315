package jobs

import (
	"encoding/json"
	"slices"
	"testing"

	"mapsworker/worker"
)

// FuzzDecode feeds Decode arbitrary bodies and message ids. Its seeds are in
// testdata/fuzz/FuzzDecode. Whatever the input, Decode must not panic, must
// mark every error invalid with a short message, and must never let a Task
// carry a name that is not a valid id and kind.
func FuzzDecode(f *testing.F) {
	kinds := KindNames()
	h := NewHandler(nil, nil)
	f.Fuzz(func(t *testing.T, body []byte, messageID string) {
		task, err := h.Decode(body, messageID)
		if err != nil {
			if c := worker.ClassOf(err); c != worker.ClassInvalid {
				t.Fatalf("error of class %v: %v", c, err)
			}
			if worker.CodeOf(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("message of %d bytes: %.100q…", len(err.Error()), err)
			}
		} else if task == nil {
			t.Fatal("no error and no task")
		}
		if task == nil {
			return
		}
		if !ValidID(task.ID()) {
			t.Fatalf("task id %q is not valid", task.ID())
		}
		if !slices.Contains(kinds, task.Kind()) {
			t.Fatalf("task kind %q is not a kind", task.Kind())
		}
		if !json.Valid(task.Request()) {
			t.Fatalf("Request() is not valid JSON: %.100q", task.Request())
		}
	})
}

// FuzzMessage feeds the whole decoding path arbitrary queue message texts:
// the engine's raw-or-base64 detection, then Decode. Seeds are in
// testdata/fuzz/FuzzMessage. Whatever the text, nothing panics and every
// refusal is an invalid request with a code.
func FuzzMessage(f *testing.F) {
	f.Add(`{"id":"a","kind":"geocode","query":"1 Main St"}`, "m1")
	f.Add("eyJpZCI6ImEiLCJraW5kIjoiZ2VvY29kZSIsInF1ZXJ5IjoiMSBNYWluIFN0In0=", "m2")
	f.Add("eyJpZCI6ImEiLCJraW5kIjoiZ2VvY29kZSIsInF1ZXJ5IjoiMSBNYWluIFN0In0", "m3")
	f.Add("!mapsworker:env=2\n{}", "m4")
	f.Add("   ", "m5")
	f.Add("\xff\xfe", "m6")
	h := NewHandler(nil, nil)
	f.Fuzz(func(t *testing.T, text, messageID string) {
		body, err := worker.DecodeBody(text)
		if err == nil {
			_, err = h.Decode(body, messageID)
		}
		if err != nil && (worker.ClassOf(err) != worker.ClassInvalid || worker.CodeOf(err) == "") {
			t.Fatalf("error of class %v code %q: %v", worker.ClassOf(err), worker.CodeOf(err), err)
		}
	})
}
