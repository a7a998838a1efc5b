package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// TaskVar is a value for one of a TICKscript's `var` declarations, given
// when the task is defined (what `kapacitor define -vars FILE` sends).
type TaskVar struct {
	// Type is Kapacitor's var type: "bool", "int", "float", "string",
	// "regex", "duration", "lambda", "list" or "star".
	Type string `json:"type"`
	// Value is the value; a duration may be a string such as "2s".
	Value any `json:"value"`
}

// DefineTaskVars is DefineTask with values overriding the script's vars
// (POST /kapacitor/v1/tasks with "vars"). Kapacitor rejects a var whose
// type differs from the script's declaration.
func (k *Kapacitord) DefineTaskVars(id, tickscript string, dbrps []DBRP, vars map[string]TaskVar, enable bool) error {
	status := "disabled"
	if enable {
		status = "enabled"
	}
	body, err := json.Marshal(map[string]any{
		"id":     id,
		"type":   "stream",
		"dbrps":  dbrps,
		"script": tickscript,
		"vars":   vars,
		"status": status,
	})
	if err != nil {
		return fmt.Errorf("define task %s: %w", id, err)
	}
	return k.do(context.Background(), "define task "+id, http.MethodPost, "/kapacitor/v1/tasks", bytes.NewReader(body), "application/json", nil)
}
