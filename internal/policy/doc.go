// Package policy is mcpgate's authorization: a pure decision function from a
// principal and a request (a tool call, a resource read, a prompt) to allow
// or deny, with the rule that decided. It does no I/O.
//
// A policy is a list of rules (config.PolicyRule). Each names the roles and
// principals it applies to ("*" for everyone), the tools, resources and
// prompts it allows or denies (globs: `*` within a '/'-separated segment,
// `**` across segments, `?` one character), and optionally a condition
// written in CEL over the request's arguments and the principal:
//
//	when: 'args.path.startsWith("/data/") && size(args.query) < 200'
//
// Conditions see four variables: args (map(string, dyn), the decoded JSON
// arguments; empty for resources), principal (map(string, dyn) with id,
// roles, scopes and authenticated), name (string) and kind (string: "tool",
// "resource" or "prompt"). They are type-checked when the policy is
// compiled and must be of type bool; each evaluation is bounded by
// CostLimit.
//
// Decisions are deny by default and fail closed:
//
//   - a request no rule allows is denied; an empty policy, or DenyAll (what
//     is in force when no valid policy is loaded), denies everything;
//   - a matching deny rule whose condition is true denies, whatever the
//     allow rules say; so does one whose condition cannot be evaluated
//     (a missing argument, a type mismatch, the cost limit);
//   - otherwise the first matching allow rule whose condition is true, or
//     that has none, allows; an allow condition that cannot be evaluated
//     counts as false.
//
// Visible answers the list question (tools/list and the like): what a
// principal may never use, it does not see.
package policy
