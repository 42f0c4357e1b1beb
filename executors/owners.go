package executors

// Owners reads, when called, which executions the jobs of this
// orchestrator own, as a predicate on execution ids (Spec.ExecutionID,
// the id a job's record holds).
//
// Reconcilers (the executors' RemoveDangling) call it after they have
// listed what they might remove, never before. A job records its
// execution before its executor creates anything and forgets it only
// after the job has ended, so a record read after the listing covers
// everything the listing found that a live job owns. Read before the
// listing, it would miss an execution recorded and created in between.
type Owners func() (owned func(executionID string) bool, err error)
