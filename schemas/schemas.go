// Package schemas holds the JSON Schemas of the worker's contract with the
// campaign backend, as files a backend in any language can read:
//
//   - tasks/<type>.json: JSON Schema (draft 2020-12) of each task payload,
//     named after its type with ":" as "_" (call:outbound is
//     tasks/call_outbound.json). A Node backend validates with ajv before
//     it enqueues.
//   - mongodb/<collection>.json: MongoDB $jsonSchema documents (bsonType,
//     not JSON types) for the campaigns and contacts collections. `worker
//     migrate` applies them as collection validators, so MongoDB refuses a
//     mistyped write at the backend's own call.
//
// Both sets are tested against the Go types (tasks and
// internal/store), so neither can drift from what the worker reads.
package schemas

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed tasks/*.json mongodb/*.json
var files embed.FS

// Task returns the JSON Schema of a task type's payload, e.g.
// Task("call:outbound").
func Task(taskType string) ([]byte, error) {
	b, err := files.ReadFile("tasks/" + strings.ReplaceAll(taskType, ":", "_") + ".json")
	if err != nil {
		return nil, fmt.Errorf("schemas: no schema for task type %q", taskType)
	}
	return b, nil
}

// Collection returns the $jsonSchema validator of a MongoDB collection,
// e.g. Collection("contacts").
func Collection(name string) ([]byte, error) {
	b, err := files.ReadFile("mongodb/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("schemas: no validator for collection %q", name)
	}
	return b, nil
}
