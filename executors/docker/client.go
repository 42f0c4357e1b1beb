package docker

import (
	"context"
	"io"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// apiClient is the part of the Docker client the executor uses;
// *client.Client implements it.
type apiClient interface {
	ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig,
		net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, opts container.StartOptions) error
	ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error)
	ContainerExecCreate(ctx context.Context, id string, opts container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, opts container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
	ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error)
	ContainerStats(ctx context.Context, id string, stream bool) (container.StatsResponseReader, error)
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	ImagePull(ctx context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	Ping(ctx context.Context) (types.Ping, error)
	Close() error
}

var _ apiClient = (*client.Client)(nil)

// observedClient reports every call's duration and error to an Observer.
// ContainerWait and ImagePull pass through: their responses stream, so
// wait.go and image.go report them when the stream ends. ContainerStats
// passes through unreported: its stream lasts as long as the container
// (cost.go).
type observedClient struct {
	apiClient
	obs Observer
}

func observed(api apiClient, obs Observer) apiClient {
	if _, ok := obs.(nopObserver); ok {
		return api
	}
	return &observedClient{apiClient: api, obs: obs}
}

// observe times call and reports it as op.
func observe[R any](obs Observer, op string, call func() (R, error)) (R, error) {
	start := time.Now()
	r, err := call()
	obs.APICall(op, time.Since(start), err)
	return r, err
}

// noResult adapts a call that returns only an error to observe.
func noResult(call func() error) func() (struct{}, error) {
	return func() (struct{}, error) { return struct{}{}, call() }
}

func (c *observedClient) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig,
	net *network.NetworkingConfig, platform *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	return observe(c.obs, "create", func() (container.CreateResponse, error) {
		return c.apiClient.ContainerCreate(ctx, cfg, host, net, platform, name)
	})
}

func (c *observedClient) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	_, err := observe(c.obs, "start", noResult(func() error { return c.apiClient.ContainerStart(ctx, id, opts) }))
	return err
}

func (c *observedClient) ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error) {
	return observe(c.obs, "attach", func() (types.HijackedResponse, error) { return c.apiClient.ContainerAttach(ctx, id, opts) })
}

func (c *observedClient) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return observe(c.obs, "inspect", func() (container.InspectResponse, error) { return c.apiClient.ContainerInspect(ctx, id) })
}

func (c *observedClient) ContainerKill(ctx context.Context, id, signal string) error {
	_, err := observe(c.obs, "kill", noResult(func() error { return c.apiClient.ContainerKill(ctx, id, signal) }))
	return err
}

func (c *observedClient) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	_, err := observe(c.obs, "remove", noResult(func() error { return c.apiClient.ContainerRemove(ctx, id, opts) }))
	return err
}

func (c *observedClient) ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error) {
	return observe(c.obs, "logs", func() (io.ReadCloser, error) { return c.apiClient.ContainerLogs(ctx, id, opts) })
}

func (c *observedClient) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	return observe(c.obs, "list", func() ([]container.Summary, error) { return c.apiClient.ContainerList(ctx, opts) })
}

func (c *observedClient) ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error) {
	return observe(c.obs, "image_inspect", func() (image.InspectResponse, error) { return c.apiClient.ImageInspect(ctx, ref, opts...) })
}

func (c *observedClient) Ping(ctx context.Context) (types.Ping, error) {
	return observe(c.obs, "ping", func() (types.Ping, error) { return c.apiClient.Ping(ctx) })
}
