package testenv

import (
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// StackReferenceType is the token of the StackReference the program reads
// its own last outputs with (components.DeployedOutput).
const StackReferenceType = "pulumi:pulumi:StackReference"

// StackReference answers a mocked StackReference with the given outputs of
// the referenced stack (nil: a stack that never ran).
func StackReference(args pulumi.MockResourceArgs, outputs map[string]any) (string, resource.PropertyMap, error) {
	name := args.Inputs["name"]
	return name.StringValue(), resource.PropertyMap{
		"name":    name,
		"outputs": resource.NewObjectProperty(resource.NewPropertyMapFromMap(outputs)),
	}, nil
}
