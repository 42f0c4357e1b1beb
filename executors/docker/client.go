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
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
	ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error)
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	ImagePull(ctx context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	Ping(ctx context.Context) (types.Ping, error)
	Close() error
}

var _ apiClient = (*client.Client)(nil)

// observedClient reports every call's duration and error to an Observer.
// ContainerWait and ImagePull pass through: their responses stream, so
// wait.go and image.go report them when the stream ends.
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

func (c *observedClient) done(op string, start time.Time, err error) {
	c.obs.APICall(op, time.Since(start), err)
}

func (c *observedClient) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig,
	net *network.NetworkingConfig, platform *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	start := time.Now()
	r, err := c.apiClient.ContainerCreate(ctx, cfg, host, net, platform, name)
	c.done("create", start, err)
	return r, err
}

func (c *observedClient) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	start := time.Now()
	err := c.apiClient.ContainerStart(ctx, id, opts)
	c.done("start", start, err)
	return err
}

func (c *observedClient) ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error) {
	start := time.Now()
	r, err := c.apiClient.ContainerAttach(ctx, id, opts)
	c.done("attach", start, err)
	return r, err
}

func (c *observedClient) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	start := time.Now()
	r, err := c.apiClient.ContainerInspect(ctx, id)
	c.done("inspect", start, err)
	return r, err
}

func (c *observedClient) ContainerKill(ctx context.Context, id, signal string) error {
	start := time.Now()
	err := c.apiClient.ContainerKill(ctx, id, signal)
	c.done("kill", start, err)
	return err
}

func (c *observedClient) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	start := time.Now()
	err := c.apiClient.ContainerRemove(ctx, id, opts)
	c.done("remove", start, err)
	return err
}

func (c *observedClient) ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error) {
	start := time.Now()
	r, err := c.apiClient.ContainerLogs(ctx, id, opts)
	c.done("logs", start, err)
	return r, err
}

func (c *observedClient) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	start := time.Now()
	r, err := c.apiClient.ContainerList(ctx, opts)
	c.done("list", start, err)
	return r, err
}

func (c *observedClient) ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error) {
	start := time.Now()
	r, err := c.apiClient.ImageInspect(ctx, ref, opts...)
	c.done("image_inspect", start, err)
	return r, err
}

func (c *observedClient) Ping(ctx context.Context) (types.Ping, error) {
	start := time.Now()
	r, err := c.apiClient.Ping(ctx)
	c.done("ping", start, err)
	return r, err
}
