import { RoutingError } from './errors.js';

/**
 * Topic patterns, as RabbitMQ reads them: a routing key and a binding key are '.'-separated words, the empty key
 * being no words at all ('a..b' has an empty middle word, 'a.' an empty last one). In a binding key the whole word
 * '*' matches exactly one word (the empty word too) and '#' zero or more; '*' or '#' inside a longer word is literal.
 *
 * The patterns of one exchange share a trie, so a route walks only the branches its words can take instead of
 * trying every pattern. '#' is matched by backtracking over how many words it takes, without memoising: runs of '#'
 * are stored as one (the same language) and a binding key may hold at most MAX_HASH_WORDS of them, as current
 * RabbitMQ allows, so a route costs at most a quadratic number of steps in the key's length per trie path.
 * A binding reachable along two paths (say 'a.#.#' with its two '#' taking turns) is collected once per path; the
 * caller deduplicates.
 */
export const MAX_HASH_WORDS = 2;

const NO_WORDS: readonly string[] = [];

export function topicWords(key: string): readonly string[] {
  return key === '' ? NO_WORDS : key.split('.');
}

/** Throws PRECONDITION_FAILED (RabbitMQ's reply to an invalid binding) for keys with too many '#' words. */
export function checkTopicBindingKey(bindingKey: string): void {
  let hashes = 0;
  for (const word of topicWords(bindingKey)) if (word === '#') hashes++;
  if (hashes > MAX_HASH_WORDS) {
    throw new RoutingError('PRECONDITION_FAILED', `Topic binding key '${bindingKey}' uses ${hashes} '#' wildcards, at most ${MAX_HASH_WORDS} are allowed`);
  }
}

class TrieNode<T> {
  literal: Map<string, TrieNode<T>> | null = null;
  star: TrieNode<T> | null = null;
  hash: TrieNode<T> | null = null;
  readonly bound: T[] = [];

  isEmpty(): boolean {
    return this.bound.length === 0 && this.star === null && this.hash === null && (this.literal === null || this.literal.size === 0);
  }
}

/** The trie path of a binding key: its words with each run of '#' made one. */
function patternPath(bindingKey: string): string[] {
  const path: string[] = [];
  for (const word of topicWords(bindingKey)) {
    if (word === '#' && path[path.length - 1] === '#') continue;
    path.push(word);
  }
  return path;
}

export class TopicTrie<T> {
  private readonly root = new TrieNode<T>();

  add(bindingKey: string, value: T): void {
    let node = this.root;
    for (const word of patternPath(bindingKey)) {
      if (word === '*') node = node.star ??= new TrieNode<T>();
      else if (word === '#') node = node.hash ??= new TrieNode<T>();
      else {
        const literal = (node.literal ??= new Map());
        let next = literal.get(word);
        if (next === undefined) literal.set(word, (next = new TrieNode<T>()));
        node = next;
      }
    }
    node.bound.push(value);
  }

  /** Removes `value` (compared by identity) from under `bindingKey`, pruning branches left empty. */
  remove(bindingKey: string, value: T): void {
    const path = patternPath(bindingKey);
    const nodes: TrieNode<T>[] = [this.root];
    for (const word of path) {
      const node = nodes[nodes.length - 1]!;
      const next = word === '*' ? node.star : word === '#' ? node.hash : (node.literal?.get(word) ?? null);
      if (next === null) return;
      nodes.push(next);
    }
    const bound = nodes[nodes.length - 1]!.bound;
    const index = bound.indexOf(value);
    if (index < 0) return;
    bound.splice(index, 1);
    for (let depth = path.length; depth > 0 && nodes[depth]!.isEmpty(); depth--) {
      const parent = nodes[depth - 1]!;
      const word = path[depth - 1]!;
      if (word === '*') parent.star = null;
      else if (word === '#') parent.hash = null;
      else parent.literal!.delete(word);
    }
  }

  /** Appends every value bound under a pattern that `routingKey` matches (some possibly more than once) to `out`. */
  collect(routingKey: string, out: T[]): void {
    walk(this.root, topicWords(routingKey), 0, out);
  }
}

function walk<T>(node: TrieNode<T>, words: readonly string[], index: number, out: T[]): void {
  if (index === words.length) {
    for (const value of node.bound) out.push(value);
    // Only '#' can still match, taking no words; it has no '#' child, so this ends the walk.
    if (node.hash !== null) walk(node.hash, words, index, out);
    return;
  }
  const next = node.literal?.get(words[index]!);
  if (next !== undefined) walk(next, words, index + 1, out);
  if (node.star !== null) walk(node.star, words, index + 1, out);
  if (node.hash !== null) for (let rest = index; rest <= words.length; rest++) walk(node.hash, words, rest, out);
}
