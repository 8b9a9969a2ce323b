// Undo for the point editor. Switching workflow tabs makes the frontend rebuild the graph, and with it
// every node and its editor: the stacks live here, by workflow and node, so the rebuilt editor finds
// the one it had. A stack is adopted only while the node's text is still the one it was left at.

const stacks = new Map(); // `${workflow}#${node id}` -> {stack: [text, ...], after: text}
const LIMIT = 100;

export class History {
  constructor(workflowKey, nodeId) {
    this.workflowKey = workflowKey; // () -> the open workflow's key
    this.nodeId = nodeId; // () -> the node's id (assigned after creation)
    this.stack = [];
  }

  key() { return `${this.workflowKey() ?? ""}#${this.nodeId()}`; }

  // `before` was replaced by `after`
  push(before, after) {
    this.stack.push(before);
    if (this.stack.length > LIMIT) this.stack.shift();
    stacks.set(this.key(), { stack: this.stack, after });
  }

  // the text to go back to from `current`, or undefined
  pop(current) {
    if (!this.stack.length) {
      const kept = stacks.get(this.key());
      if (kept && kept.after === current) this.stack = kept.stack; // this node before the graph was rebuilt
    }
    const prev = this.stack.pop();
    if (prev !== undefined) stacks.set(this.key(), { stack: this.stack, after: prev });
    return prev;
  }
}
