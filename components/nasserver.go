// Package components holds the NasServer component and the pure builders
// behind it: VolumeFor (the one description of a PV/PVC) and the Service and
// Deployment of an in-cluster server.
package components

import (
	"fmt"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
)

// NasServerType is the component's type token.
const NasServerType = "nas:index:NasServer"

// NasServerArgs configure one NAS.
type NasServerArgs struct {
	Config *spec.Config // the validated stack config (shared + environment)
	Server spec.Server  // the server, one of Config.Servers
	// Placement is where the server runs (nil: PlacementFor(Config)); Deploy
	// passes the one it prepared.
	Placement Placement
	// DependsOn orders the children after e.g. the namespaces they live in.
	DependsOn []pulumi.Resource
}

// NasServer is one NAS: in target cluster a nasd Deployment, its Service and
// its handle key Secret, plus the PV/PVC pointing at the Service's clusterIP; in target external only the
// PV/PVC, pointing at the physical device.
type NasServer struct {
	pulumi.ResourceState

	NFSAddress     pulumi.StringOutput `pulumi:"nfsAddress"`     // PV nfs.server
	NodePort       pulumi.IntPtrOutput `pulumi:"nodePort"`       // cluster only
	ExportPath     pulumi.StringOutput `pulumi:"exportPath"`     // PV nfs.path
	VolumeName     pulumi.StringOutput `pulumi:"volumeName"`     // PV name
	ClaimName      pulumi.StringOutput `pulumi:"claimName"`      // PVC name
	ClaimNamespace pulumi.StringOutput `pulumi:"claimNamespace"` // PVC namespace
	MountCommand   pulumi.StringOutput `pulumi:"mountCommand"`   // how a Linux host mounts it by hand, from where kubelet mounts (the node)
	// ExternalMountCommand mounts it from outside the cluster: through the
	// node's IP (NodeIPPlaceholder) and the NodePort in dev, like MountCommand
	// for a physical NAS. NFSURL is the same for libnfs clients (nfs-ls, nfs-cp).
	ExternalMountCommand pulumi.StringOutput `pulumi:"externalMountCommand"`
	NFSURL               pulumi.StringOutput `pulumi:"nfsURL"`
	PortmapperNodePort   pulumi.IntPtrOutput `pulumi:"portmapperNodePort"` // cluster only

	Volume Volume // what the PV/PVC were rendered from (plain data, for digests)
}

// NewNasServer registers the component and its children.
func NewNasServer(ctx *pulumi.Context, name string, args *NasServerArgs, opts ...pulumi.ResourceOption) (*NasServer, error) {
	if args == nil || args.Config == nil {
		return nil, fmt.Errorf("NasServer %s: Config is required", name)
	}
	s := &NasServer{Volume: VolumeFor(args.Config.Shared, args.Server)}
	if err := ctx.RegisterComponentResource(NasServerType, name, s, opts...); err != nil {
		return nil, err
	}
	child := []pulumi.ResourceOption{pulumi.Parent(s), pulumi.DependsOn(args.DependsOn)}
	srv := args.Server

	place := args.Placement
	if place == nil {
		var err error
		if place, err = PlacementFor(args.Config); err != nil {
			return nil, fmt.Errorf("NasServer %s: %w", name, err)
		}
	}
	served, err := place.Serve(ctx, srv, s.Volume, child)
	if err != nil {
		return nil, err
	}
	nfsServer := served.NFSServer
	s.NodePort, s.PortmapperNodePort = served.NodePort, served.PortmapperNodePort
	s.ExternalMountCommand = pulumi.String(served.ExternalMountCommand).ToStringOutput()
	s.NFSURL = pulumi.String(served.NFSURL).ToStringOutput()

	pvOpts, pvcOpts := place.VolumeOptions(s.Volume)
	pvOpts = append(pvOpts, pulumi.ReplaceOnChanges(PVReplaceOnChanges), pulumi.DependsOn(served.DependsOn))
	pv, err := corev1.NewPersistentVolume(ctx, name, s.Volume.PersistentVolumeArgs(nfsServer), append(child, pvOpts...)...)
	if err != nil {
		return nil, err
	}
	// The claim waits for its volume (binding by volumeName needs the PV) and
	// is replaced with it: a claim bound to a deleted volume is Lost.
	pvcOpts = append(pvcOpts, pulumi.DependsOn([]pulumi.Resource{pv}),
		pulumi.ReplaceOnChanges(PVCReplaceOnChanges), pulumi.ReplaceWith([]pulumi.Resource{pv}))
	if _, err := corev1.NewPersistentVolumeClaim(ctx, name, s.Volume.ClaimArgs(), append(child, pvcOpts...)...); err != nil {
		return nil, err
	}

	s.NFSAddress = nfsServer
	s.ExportPath = pulumi.String(s.Volume.ExportPath).ToStringOutput()
	s.VolumeName = pulumi.String(s.Volume.Name).ToStringOutput()
	s.ClaimName = pulumi.String(s.Volume.Claim.Name).ToStringOutput()
	s.ClaimNamespace = pulumi.String(s.Volume.Claim.Namespace).ToStringOutput()
	s.MountCommand = nfsServer.ApplyT(func(addr string) string { return MountCommand(s.Volume, addr) }).(pulumi.StringOutput)

	return s, ctx.RegisterResourceOutputs(s, pulumi.Map{
		"nfsAddress":     s.NFSAddress,
		"nodePort":       s.NodePort,
		"exportPath":     s.ExportPath,
		"volumeName":     s.VolumeName,
		"claimName":      s.ClaimName,
		"claimNamespace": s.ClaimNamespace,
		"mountCommand":   s.MountCommand,
		// from outside the cluster
		"externalMountCommand": s.ExternalMountCommand,
		"nfsURL":               s.NFSURL,
		"portmapperNodePort":   s.PortmapperNodePort,
	})
}

// NodeIPPlaceholder stands for the address of a cluster node in the commands
// for outside clients (the program cannot know it: `minikube ip` tells).
const NodeIPPlaceholder = "<node-ip>"

// ExternalMountCommand mounts the volume from outside the cluster through a
// node's NodePort. The NodePort serves NFS and MOUNT on one port, so port=
// and mountport= name it and mount.nfs asks no portmapper (port 111 of the
// node is not the Service's; its portmapper is on the portmapper NodePort).
func ExternalMountCommand(v Volume, nodeIP string, nodePort int) string {
	opts := strings.Join(v.MountOptions, ",")
	if v.ReadOnly {
		opts += ",ro"
	}
	return fmt.Sprintf("mount -t nfs -o %s,port=%d,mountport=%d %s:%s /mnt/%s", opts, nodePort, nodePort, nodeIP, v.ExportPath, v.Name)
}

// NFSURL is the libnfs URL of the volume; a port of 0 leaves the ports to
// the portmapper (a physical NAS on 111).
func NFSURL(v Volume, host string, port int) string {
	u := fmt.Sprintf("nfs://%s%s", host, v.ExportPath)
	if port != 0 {
		u += fmt.Sprintf("?nfsport=%d&mountport=%d", port, port)
	}
	return u
}

// MountCommand is the Linux command that mounts the volume like kubelet does.
func MountCommand(v Volume, addr string) string {
	opts := strings.Join(v.MountOptions, ",")
	if v.ReadOnly {
		opts += ",ro"
	}
	return fmt.Sprintf("mount -t nfs -o %s %s:%s /mnt/%s", opts, addr, v.ExportPath, v.Name)
}
