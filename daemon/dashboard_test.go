package daemon

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The dashboard in dashboards/ must only query metrics the orchestrator
// exports, group and filter them by labels those metrics have, and name
// series in legends by labels the query keeps.
func TestGrafanaDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile("../dashboards/cronium-orchestrator.json")
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, raw)
	if len(queries) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(queries))
	}
	s, _ := observedStack(t)
	runSomeJobs(t, s)
	exported := exportedLabels(s.scrape(t))
	for _, q := range queries {
		names := metricNames(q.Expr)
		if len(names) == 0 {
			t.Errorf("no metric found in %q", q.Expr)
		}
		for _, n := range names {
			if _, ok := exported[n]; !ok {
				t.Errorf("the dashboard queries %s (in %q), which /metrics does not export", n, q.Expr)
			}
		}
		for _, p := range labelProblems(q, exported) {
			t.Error(p)
		}
	}
}

// dashboardQuery is one PromQL expression of the dashboard, with the
// legend of its panel target or the label a query variable reads.
type dashboardQuery struct {
	Expr, Legend string
	Labels       []string // label_values(METRIC, LABEL): LABEL
}

// dashboardQueries collects every PromQL expression: panel targets (rows
// may nest panels) and query variables.
func dashboardQueries(t *testing.T, raw []byte) []dashboardQuery {
	t.Helper()
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var queries []dashboardQuery
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, p := range panels {
			var panel struct {
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr         string `json:"expr"`
					LegendFormat string `json:"legendFormat"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(p, &panel); err != nil {
				t.Fatal(err)
			}
			for _, tg := range panel.Targets {
				queries = append(queries, dashboardQuery{Expr: tg.Expr, Legend: tg.LegendFormat})
			}
			walk(panel.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			// label_values(METRIC, LABEL): only the first argument is a metric.
			def, _ := strings.CutPrefix(v.Definition, "label_values(")
			metric, label, _ := strings.Cut(strings.TrimSuffix(strings.TrimSpace(def), ")"), ",")
			queries = append(queries, dashboardQuery{Expr: strings.TrimSpace(metric),
				Labels: []string{strings.TrimSpace(label)}})
		}
	}
	return queries
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promVariables = regexp.MustCompile(`\$\{?\w+\}?`)
	promKeywords  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "bool": true,
		"and": true, "or": true, "unless": true, "offset": true, "group_left": true, "group_right": true}

	promByLabels      = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	promMatcherLabels = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)`)
	promAggregation   = regexp.MustCompile(`\b(?:sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile)\s*(?:\(|by|without)`)
	legendLabels      = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	exposedLabel      = regexp.MustCompile(`([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"`)
)

// metricNames extracts the metric names of a PromQL expression: what is
// left once strings, label matchers, ranges, groupings, variables and
// function calls are removed.
func metricNames(expr string) []string {
	e := promVariables.ReplaceAllString(expr, "")
	e = promStrings.ReplaceAllString(e, "")
	e = promMatchers.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " ")
		if promKeywords[word] || strings.HasPrefix(rest, "(") {
			continue // a keyword or a function
		}
		names = append(names, word)
	}
	return names
}

// exportedLabels maps each series name in exposition text to the label
// names it has.
func exportedLabels(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, m := range exposedLabel.FindAllStringSubmatch(line[len(name):], -1) {
			out[name][m[1]] = true
		}
	}
	return out
}

// targetLabels are added by Prometheus at scrape time, not exported.
var targetLabels = map[string]bool{"instance": true, "job": true}

// labelProblems checks the labels a query uses: every label it groups or
// filters by must exist on each metric it reads (or be a target label),
// and a legend may only name labels that survive the query: those of its
// by (...) when it aggregates, none when it aggregates them all away.
func labelProblems(q dashboardQuery, exported map[string]map[string]bool) []string {
	var problems []string
	e := promVariables.ReplaceAllString(q.Expr, "")
	var by, used []string
	for _, m := range promByLabels.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				by = append(by, l)
			}
		}
	}
	used = append(used, by...)
	for _, m := range promMatchers.FindAllString(promStrings.ReplaceAllString(e, `""`), -1) {
		if strings.HasPrefix(m, "{") {
			for _, l := range promMatcherLabels.FindAllStringSubmatch(m, -1) {
				used = append(used, l[1])
			}
		}
	}
	used = append(used, q.Labels...)
	for _, n := range metricNames(q.Expr) {
		has, ok := exported[n]
		if !ok {
			continue // reported as a missing metric
		}
		for _, l := range used {
			if !has[l] && !targetLabels[l] {
				problems = append(problems, "the dashboard uses label "+l+" of "+n+" (in "+q.Expr+"), which it does not have")
			}
		}
	}
	aggregates := promAggregation.MatchString(e)
	for _, m := range legendLabels.FindAllStringSubmatch(q.Legend, -1) {
		l := m[1]
		switch {
		case len(by) > 0 && !slices.Contains(by, l):
			problems = append(problems, "legend "+q.Legend+" names "+l+", which "+q.Expr+" groups away")
		case len(by) == 0 && aggregates:
			problems = append(problems, "legend "+q.Legend+" names "+l+", which "+q.Expr+" aggregates away")
		case len(by) == 0 && !targetLabels[l]:
			for _, n := range metricNames(q.Expr) {
				if has, ok := exported[n]; ok && !has[l] {
					problems = append(problems, "legend "+q.Legend+" names "+l+", which "+n+" does not have")
				}
			}
		}
	}
	return problems
}

func TestMetricNames(t *testing.T) {
	tests := map[string]string{
		`sum by (outcome) (rate(cronium_orchestrator_jobs_finished_total{instance=~"$instance"}[$__rate_interval]))`: "cronium_orchestrator_jobs_finished_total",
		`histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{a="b"}[5m])))`:                                   "x_bucket",
		`a / on (kind) b > 2`: "a,b",
	}
	for expr, want := range tests {
		if got := strings.Join(metricNames(expr), ","); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestLabelProblems(t *testing.T) {
	exported := exportedLabels(`# HELP x_total X.
x_total{code="2xx",route="/api/internal/jobs/{id}/complete"} 1
x_seconds_bucket{kind="job",le="0.1"} 1
g 3
`)
	tests := []struct {
		q    dashboardQuery
		want int
	}{
		{dashboardQuery{Expr: `sum by (code) (rate(x_total{instance=~"$instance"}[5m]))`, Legend: "{{code}}"}, 0},
		{dashboardQuery{Expr: `histogram_quantile(0.9, sum by (le, kind) (rate(x_seconds_bucket[5m])))`,
			Legend: "p90 {{kind}}"}, 0},
		{dashboardQuery{Expr: `g{instance=~"$instance"}`, Legend: "{{instance}}"}, 0},
		{dashboardQuery{Expr: `sum(rate(x_total[5m]))`, Legend: "requests/s"}, 0},
		{dashboardQuery{Expr: `x_total`, Labels: []string{"instance"}}, 0},
		{dashboardQuery{Expr: `sum by (method) (rate(x_total[5m]))`, Legend: "{{method}}"}, 1}, // no such label
		{dashboardQuery{Expr: `sum by (code) (rate(x_total[5m]))`, Legend: "{{route}}"}, 1},    // grouped away
		{dashboardQuery{Expr: `sum(rate(x_total[5m]))`, Legend: "{{code}}"}, 1},                // aggregated away
		{dashboardQuery{Expr: `rate(x_total{outcome="success"}[5m])`, Legend: "{{kind}}"}, 2},  // neither exists
		{dashboardQuery{Expr: `histogram_quantile(0.9, sum by (le, op) (rate(x_seconds_bucket[5m])))`}, 1},
		{dashboardQuery{Expr: `x_total`, Labels: []string{"state"}}, 1},
	}
	for _, tt := range tests {
		if got := labelProblems(tt.q, exported); len(got) != tt.want {
			t.Errorf("%+v: %d problems, want %d: %q", tt.q, len(got), tt.want, got)
		}
	}
}
