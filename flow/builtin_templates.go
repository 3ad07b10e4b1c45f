package flow

import "encoding/json"

// BuiltinTemplate is one template of the shipped catalogue (PRODUCT §5.5 "Built-in catalogue"),
// seeded as an is_system template keyed on Key.
//
// Placeholders are RFC 6901 pointers into Graph at the values a user must fill after creating a
// flow from the template (an HTTP URL, say). Those values are left empty in Graph, never given
// example URLs or fake ids, so a flow created from the template fails its completeness check
// exactly there until the user fills them. The catalogue test holds every template to that: it
// passes the structural checks, its completeness issues are among its placeholders, and every
// {{reference}} names a reserved root or an upstream node.
type BuiltinTemplate struct {
	Key          string
	Name         string
	Description  string
	Category     string // the slug of its template category (PRODUCT §5.12), for when categories exist
	Icon         string
	Graph        json.RawMessage
	Placeholders []string
}

// PendingTemplate is a template of the PRODUCT §5.5 catalogue that is not shipped yet because some
// of its node types are not in the registry: a template must only use node types that run. Needs
// lists them; the catalogue test fails once all of them exist, so the template gets written then.
type PendingTemplate struct {
	Key   string
	Needs []string
}

// BuiltinTemplates returns the shipped catalogue, in a stable order. The graphs are fresh copies.
func BuiltinTemplates() []BuiltinTemplate {
	out := make([]BuiltinTemplate, len(builtinTemplates))
	for i, t := range builtinTemplates {
		t.Graph = append(json.RawMessage(nil), t.Graph...)
		t.Placeholders = append([]string(nil), t.Placeholders...)
		out[i] = t
	}
	return out
}

// PendingTemplates lists the catalogue templates that wait for node types (see PendingTemplate).
func PendingTemplates() []PendingTemplate {
	out := make([]PendingTemplate, len(pendingTemplates))
	for i, t := range pendingTemplates {
		t.Needs = append([]string(nil), t.Needs...)
		out[i] = t
	}
	return out
}

var builtinTemplates = []BuiltinTemplate{
	{
		Key:         "seo-content-to-cms",
		Name:        "SEO Content to CMS",
		Description: "Writes an SEO blog post about a keyword with AI and posts it to your CMS's HTTP API as JSON.",
		Category:    "content",
		Icon:        "FiFile",
		Graph: json.RawMessage(`{
  "nodes": [
    {"id": "trigger_1", "type": "custom", "position": {"x": 0, "y": 0},
     "data": {"type": "trigger-manual", "label": "Keyword", "config": {
       "inputFields": [{"key": "keyword", "label": "Keyword", "type": "text", "required": true}]}}},
    {"id": "writer_1", "type": "custom", "position": {"x": 280, "y": 0},
     "data": {"type": "ai-content-writer", "label": "Write the post", "config": {
       "content_type": "blog_post",
       "topic": "An SEO-friendly article targeting the keyword \"{{trigger.input.keyword}}\"",
       "tone": "professional", "length": "long"}}},
    {"id": "http_1", "type": "custom", "position": {"x": 560, "y": 0},
     "data": {"type": "action-http", "label": "Post to the CMS", "config": {
       "url": "", "method": "POST", "body_type": "json",
       "body": {"title": "{{trigger.input.keyword}}", "content": "{{writer_1.response}}", "status": "draft"}}}},
    {"id": "response_1", "type": "custom", "position": {"x": 840, "y": 0},
     "data": {"type": "response-data", "label": "Result", "config": {
       "status": 200,
       "body": {"keyword": "{{trigger.input.keyword}}", "cms_status": "{{http_1.status}}", "cms_response": "{{http_1.body}}"}}}}
  ],
  "edges": [
    {"id": "e1", "source": "trigger_1", "target": "writer_1"},
    {"id": "e2", "source": "writer_1", "target": "http_1"},
    {"id": "e3", "source": "http_1", "target": "response_1"}
  ]
}`),
		Placeholders: []string{"/nodes/2/data/config/url"},
	},
	{
		Key:         "webhook-ai-http",
		Name:        "Webhook → AI → HTTP",
		Description: "Summarises each payload your webhook receives with OpenAI, forwards the summary to an HTTP endpoint and answers the caller with it.",
		Category:    "automation",
		Icon:        "FiZap",
		Graph: json.RawMessage(`{
  "nodes": [
    {"id": "trigger_1", "type": "custom", "position": {"x": 0, "y": 0},
     "data": {"type": "trigger-webhook", "label": "Webhook", "config": {"response_mode": "last_node"}}},
    {"id": "ai_1", "type": "custom", "position": {"x": 280, "y": 0},
     "data": {"type": "ai-openai", "label": "Summarise", "config": {
       "system_prompt": "You turn webhook payloads into short, factual summaries for a team chat.",
       "prompt": "Summarise this payload in at most three sentences:\n{{trigger.body}}"}}},
    {"id": "http_1", "type": "custom", "position": {"x": 560, "y": 0},
     "data": {"type": "action-http", "label": "Forward", "config": {
       "url": "", "method": "POST", "body_type": "json",
       "body": {"summary": "{{ai_1.response}}", "payload": "{{trigger.body}}"}}}},
    {"id": "response_1", "type": "custom", "position": {"x": 840, "y": 0},
     "data": {"type": "response-data", "label": "Answer", "config": {
       "status": 200,
       "body": {"summary": "{{ai_1.response}}", "forwarded_status": "{{http_1.status}}"}}}}
  ],
  "edges": [
    {"id": "e1", "source": "trigger_1", "target": "ai_1"},
    {"id": "e2", "source": "ai_1", "target": "http_1"},
    {"id": "e3", "source": "http_1", "target": "response_1"}
  ]
}`),
		Placeholders: []string{"/nodes/2/data/config/url"},
	},
}

// pendingTemplates are the rest of the PRODUCT §5.5 table. They join the catalogue when their
// channel, knowledge and handoff nodes are registered (they run for real only then):
//   - ai-chatbot (customer-support): trigger-message → ai-gemini → action-send-message.
//   - kb-faq-bot (customer-support): trigger-message → ai-knowledge → found: action-send-message,
//     not_found: human-handoff.
//   - support-triage (customer-support): trigger-message → ai-classify → question: ai-knowledge → send;
//     complaint and urgent: human-handoff.
//   - lead-qualification (sales): trigger-message → ai-openai → logic-condition → human-handoff or
//     action-send-message.
//   - daily-digest (automation): trigger-schedule → action-http → ai-gemini → action-send-message.
var pendingTemplates = []PendingTemplate{
	{Key: "ai-chatbot", Needs: []string{"trigger-message", "action-send-message"}},
	{Key: "kb-faq-bot", Needs: []string{"trigger-message", "ai-knowledge", "action-send-message", "human-handoff"}},
	{Key: "support-triage", Needs: []string{"trigger-message", "ai-knowledge", "action-send-message", "human-handoff"}},
	{Key: "lead-qualification", Needs: []string{"trigger-message", "action-send-message", "human-handoff"}},
	{Key: "daily-digest", Needs: []string{"action-send-message"}},
}
