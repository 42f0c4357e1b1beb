package supervisor

import (
	"time"

	"github.com/cronium/orchestrator/executors"
)

// nopObserver is used when no metrics are wanted.
type nopObserver struct{}

func (nopObserver) MessageHandled(string, string, time.Duration, time.Duration) {}
func (nopObserver) JobRunning(string, time.Duration)                            {}
func (nopObserver) JobRetried()                                                 {}
func (nopObserver) JobCost(string, executors.Cost)                              {}
func (nopObserver) HelperCall(string, string)                                   {}
func (nopObserver) OutputShipped(int64, int64, int64)                           {}
func (nopObserver) OutputMasked(int)                                            {}
func (nopObserver) JobReceived()                                                {}
func (nopObserver) JobFinished(string, string, time.Duration)                   {}
func (nopObserver) ActorSpawned(string)                                         {}
func (nopObserver) ActorStopped(string)                                         {}
func (nopObserver) ActorRestarted(string)                                       {}
func (nopObserver) RestartBudgetExhausted(string)                               {}
func (nopObserver) DeadLetter()                                                 {}
func (nopObserver) JobsActive(int)                                              {}
