package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// envECSMetadata is set by the ECS agent in every container of a task
// (Fargate platform 1.4.0+, EC2 agent 1.39.0+).
const envECSMetadata = "ECS_CONTAINER_METADATA_URI_V4"

// ecsContainer is the part of the task metadata v4 container JSON that
// registration uses (GET ${ECS_CONTAINER_METADATA_URI_V4}, and each
// element of the task's Containers).
type ecsContainer struct {
	DockerID string `json:"DockerId"`
	Name     string `json:"Name"`
	Type     string `json:"Type"`
	Networks []struct {
		NetworkMode   string   `json:"NetworkMode"`
		IPv4Addresses []string `json:"IPv4Addresses"`
	} `json:"Networks"`
}

// ecsTask is the part of the task metadata v4 task JSON
// (GET ${ECS_CONTAINER_METADATA_URI_V4}/task) that registration uses.
type ecsTask struct {
	Cluster          string         `json:"Cluster"`
	ServiceName      string         `json:"ServiceName"`
	TaskARN          string         `json:"TaskARN"`
	Family           string         `json:"Family"`
	Revision         string         `json:"Revision"`
	AvailabilityZone string         `json:"AvailabilityZone"`
	LaunchType       string         `json:"LaunchType"`
	Containers       []ecsContainer `json:"Containers"`
}

// ecsInfo is what the metadata says about the task we run in.
type ecsInfo struct {
	IP       string
	Service  string // ServiceName, else Family
	Zone     string
	Metadata map[string]string
}

// readECS reads the task and container metadata, retrying briefly: the
// endpoint can lag the container's start.
func readECS(ctx context.Context, base string) (*ecsInfo, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		task ecsTask
		self ecsContainer
		err  error
	)
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		if err = getJSON(ctx, client, base+"/task", &task); err != nil {
			continue
		}
		if err = getJSON(ctx, client, base, &self); err != nil {
			continue
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ECS task metadata from $%s: %w", envECSMetadata, err)
	}
	info := &ecsInfo{Zone: task.AvailabilityZone, Service: task.ServiceName, Metadata: map[string]string{}}
	if info.Service == "" {
		info.Service = task.Family
	}
	info.IP = firstIPv4(self)
	if info.IP == "" {
		// Some agents leave the container's own Networks out; find it in
		// the task, else take the first container with an address.
		for _, c := range task.Containers {
			if c.DockerID == self.DockerID || c.Name == self.Name {
				info.IP = firstIPv4(c)
			}
		}
		for _, c := range task.Containers {
			if info.IP == "" {
				info.IP = firstIPv4(c)
			}
		}
	}
	if info.IP == "" {
		return nil, errors.New("the ECS task metadata lists no private IPv4 address (Containers[].Networks[].IPv4Addresses)")
	}
	for k, v := range map[string]string{
		"ecs.cluster": task.Cluster, "ecs.service": task.ServiceName, "ecs.task_arn": task.TaskARN,
		"ecs.family": task.Family, "ecs.revision": task.Revision, "ecs.availability_zone": task.AvailabilityZone,
		"ecs.launch_type": task.LaunchType, "ecs.container": self.Name,
	} {
		if v != "" {
			info.Metadata[k] = v
		}
	}
	return info, nil
}

func firstIPv4(c ecsContainer) string {
	for _, n := range c.Networks {
		for _, ip := range n.IPv4Addresses {
			if ip != "" {
				return ip
			}
		}
	}
	return ""
}

func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, strconv.Itoa(res.StatusCode))
	}
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(out)
}
