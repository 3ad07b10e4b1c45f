package server

import (
	"context"

	"github.com/oapi-codegen/nullable"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
)

func apiProperties(props []flow.Property) []api.NodeTypeProperty {
	out := make([]api.NodeTypeProperty, 0, len(props))
	for _, p := range props {
		ap := api.NodeTypeProperty{Name: p.Name, Label: p.Label, Type: api.NodeTypePropertyType(p.Type), Required: p.Required,
			Default: p.Default, Description: p.Description, Templated: p.Templated}
		if p.Placeholder != "" {
			ap.Placeholder = &p.Placeholder
		}
		if p.OptionsSource != "" {
			ap.OptionsSource = &p.OptionsSource
		}
		if p.Min != nil {
			v := float32(*p.Min)
			ap.Min = &v
		}
		if p.Max != nil {
			v := float32(*p.Max)
			ap.Max = &v
		}
		if len(p.Options) > 0 {
			opts := make([]api.NodeTypeOption, len(p.Options))
			for i, o := range p.Options {
				opts[i] = api.NodeTypeOption{Value: o.Value, Label: o.Label}
			}
			ap.Options = &opts
		}
		if len(p.ItemProperties) > 0 {
			items := apiProperties(p.ItemProperties)
			ap.ItemProperties = &items
		}
		out = append(out, ap)
	}
	return out
}

func apiNodeType(t flow.NodeType) api.NodeType {
	outs := make([]api.NodeTypeOutput, len(t.Outputs))
	for i, o := range t.Outputs {
		outs[i] = api.NodeTypeOutput{Handle: o.Handle, Label: o.Label}
	}
	schema := t.OutputSchema
	if schema == nil {
		schema = map[string]any{"type": "object"}
	}
	dyn := nullable.NewNullNullable[string]()
	if t.DynamicOutputs != "" {
		dyn = nullable.NewNullableWithValue(t.DynamicOutputs)
	}
	return api.NodeType{Id: t.ID, Label: t.Label, Category: api.NodeTypeCategoryID(t.Category), Icon: t.Icon, Color: t.Color,
		Description: t.Description, SchemaVersion: t.SchemaVersion, Deprecated: t.Deprecated, Properties: apiProperties(t.Properties),
		Outputs: outs, DynamicOutputs: dyn, OutputSchema: schema}
}

func (h *handlers) ListNodeTypes(_ context.Context, req api.ListNodeTypesRequestObject) (api.ListNodeTypesResponseObject, error) {
	out := api.NodeTypeList{Items: []api.NodeType{}}
	for _, t := range flow.NodeTypes() {
		if req.Params.Category != nil && string(*req.Params.Category) != t.Category {
			continue
		}
		out.Items = append(out.Items, apiNodeType(t))
	}
	return api.ListNodeTypes200JSONResponse{Body: out}, nil
}

func (h *handlers) ListNodeTypeCategories(context.Context, api.ListNodeTypeCategoriesRequestObject) (api.ListNodeTypeCategoriesResponseObject, error) {
	out := api.NodeTypeCategoryList{Items: []api.NodeTypeCategory{}}
	for _, c := range flow.NodeCategories() {
		out.Items = append(out.Items, api.NodeTypeCategory{Id: api.NodeTypeCategoryID(c.ID), Label: c.Label, Color: c.Color})
	}
	return api.ListNodeTypeCategories200JSONResponse{Body: out}, nil
}

func (h *handlers) GetNodeType(_ context.Context, req api.GetNodeTypeRequestObject) (api.GetNodeTypeResponseObject, error) {
	t, ok := flow.LookupNodeType(req.TypeId)
	if !ok {
		return nil, notFound("node type")
	}
	return api.GetNodeType200JSONResponse{Body: apiNodeType(t)}, nil
}
