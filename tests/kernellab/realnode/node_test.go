//go:build kernellab

package realnode

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/tests/kernellab/kube"
)

// TestNodeRunsPods: a busybox pod from the imported image runs in a real
// container, and its port answers through a ClusterIP Service, that is
// through kube-proxy's iptables rules, from the node.
func TestNodeRunsPods(t *testing.T) {
	const clusterIP = "10.96.200.10" // inside the dev serviceCIDR, away from the servers' fixed IPs
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers:
  - name: web
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www']
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: %s
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`, kube.BusyboxImage, clusterIP))
	t0 := time.Now()
	waitPod(t, "default", "web", 3*time.Minute)
	t.Logf("busybox pod Running and Ready in %.0fs", time.Since(t0).Seconds())
	c := &http.Client{Timeout: 5 * time.Second}
	eventually(t, time.Minute, "GET http://"+clusterIP+"/ through kube-proxy", func() error {
		resp, err := c.Get("http://" + clusterIP + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(b), "hello from web") {
			return fmt.Errorf("got %d %q", resp.StatusCode, b)
		}
		return nil
	})
	kubectl(t, "delete", "pod,service", "-n", "default", "web", "--wait=false")
}
