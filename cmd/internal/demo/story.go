package main

import (
	"context"
	"fmt"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// step is one point of the story.
type step struct {
	host string
	idle float64
}

// story: web-1 and web-2 go OK → WARNING → CRITICAL → OK, db-1 only
// OK → WARNING → OK. Thresholds (cpu_squadcast.tick): crit < 10, warn < 25,
// info < 40 on usage_idle.
var story = []step{
	{"web-1", 80}, {"web-2", 75}, {"db-1", 90},
	{"web-1", 20}, {"db-1", 18},
	{"web-2", 22},
	{"web-1", 6},
	{"web-2", 4},
	{"db-1", 70},
	{"web-1", 85},
	{"web-2", 88},
}

// wantIncidents is how many requests the story makes: web-1 and web-2 send
// WARNING, CRITICAL, OK each; db-1 sends WARNING, OK.
const wantIncidents = 3 + 3 + 2

// defineTask defines and enables the task cpu_squadcast from script, and
// checks that it runs.
func defineTask(kap *stack.Kapacitord, script []byte) error {
	if err := kap.DefineTask("cpu_squadcast", string(script), []stack.DBRP{{DB: "telegraf", RP: "autogen"}}, true); err != nil {
		return err
	}
	task, err := kap.Task("cpu_squadcast")
	if err != nil {
		return err
	}
	if !task.Executing || task.Error != "" {
		return fmt.Errorf("task cpu_squadcast is not running: executing %v, error %q", task.Executing, task.Error)
	}
	fmt.Println("task cpu_squadcast defined from tickscripts/cpu_squadcast.tick (crit < 10, warn < 25, info < 40 on usage_idle)")
	fmt.Println()
	return nil
}

// tell writes the story's points to kapacitord, 300ms apart, printing each.
func tell(ctx context.Context, kap *stack.Kapacitord) error {
	for _, s := range story {
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
		now := time.Now()
		fmt.Printf("kapacitor ← %s  cpu,host=%-6s usage_idle=%g\n", now.Format("15:04:05.000"), s.host, s.idle)
		if err := kap.Write("telegraf", "autogen", stack.Line(s.host, s.idle, int64((100-s.idle)/10), now)); err != nil {
			return err
		}
	}
	return nil
}

// waitForIncidents waits up to 30s until the stand-in has the story's
// incidents, then 500ms more for stragglers (which would be too many).
func waitForIncidents(ctx context.Context, kap *stack.Kapacitord, standIn *stack.StandIn) error {
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	for standIn.Count() < wantIncidents {
		if err := sleep(waitCtx, 50*time.Millisecond); err != nil {
			task, _ := kap.Task("cpu_squadcast")
			return fmt.Errorf("got %d of %d incidents (task executing %v, error %q): %w", standIn.Count(), wantIncidents, task.Executing, task.Error, err)
		}
	}
	return sleep(ctx, 500*time.Millisecond)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
