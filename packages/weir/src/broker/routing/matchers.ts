import { compileHeadersRule, type HeadersRule, headersMatch } from './headers-rule.js';
import { checkTopicBindingKey, TopicTrie } from './topic-trie.js';
import type { Binding, ExchangeType } from './types.js';

/**
 * The per-type part of an exchange: which of its bindings a message matches. `T` is the caller's record of a binding;
 * matchers keep records by identity and hand matching ones back by appending them to an array the caller reuses,
 * so a route allocates nothing here (bar the topic key's words).
 */
export interface Matcher<T extends { readonly binding: Binding }> {
  add(record: T): void;
  remove(record: T): void;
  collect(routingKey: string, headers: ReadonlyMap<string, unknown> | null, out: T[]): void;
}

/** Throws PRECONDITION_FAILED for a binding the exchange type cannot use, before anything is changed. */
export function checkBindingFor(type: ExchangeType, binding: Binding): void {
  if (type === 'topic') checkTopicBindingKey(binding.routingKey);
  else if (type === 'headers') compileHeadersRule(binding.arguments);
}

export function createMatcher<T extends { readonly binding: Binding }>(type: ExchangeType): Matcher<T> {
  switch (type) {
    case 'direct':
      return new DirectMatcher<T>();
    case 'fanout':
      return new FanoutMatcher<T>();
    case 'topic':
      return new TopicMatcher<T>();
    case 'headers':
      return new HeadersMatcher<T>();
  }
}

function removeFrom<T>(list: T[], record: T): void {
  const index = list.indexOf(record);
  if (index >= 0) list.splice(index, 1);
}

class DirectMatcher<T extends { readonly binding: Binding }> implements Matcher<T> {
  private readonly byKey = new Map<string, T[]>();

  add(record: T): void {
    const key = record.binding.routingKey;
    const list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, [record]);
    else list.push(record);
  }

  remove(record: T): void {
    const key = record.binding.routingKey;
    const list = this.byKey.get(key);
    if (list === undefined) return;
    removeFrom(list, record);
    if (list.length === 0) this.byKey.delete(key);
  }

  collect(routingKey: string, _headers: ReadonlyMap<string, unknown> | null, out: T[]): void {
    const list = this.byKey.get(routingKey);
    if (list !== undefined) for (const record of list) out.push(record);
  }
}

class FanoutMatcher<T extends { readonly binding: Binding }> implements Matcher<T> {
  private readonly all: T[] = [];

  add(record: T): void {
    this.all.push(record);
  }

  remove(record: T): void {
    removeFrom(this.all, record);
  }

  collect(_routingKey: string, _headers: ReadonlyMap<string, unknown> | null, out: T[]): void {
    for (const record of this.all) out.push(record);
  }
}

class TopicMatcher<T extends { readonly binding: Binding }> implements Matcher<T> {
  private readonly trie = new TopicTrie<T>();

  add(record: T): void {
    this.trie.add(record.binding.routingKey, record);
  }

  remove(record: T): void {
    this.trie.remove(record.binding.routingKey, record);
  }

  collect(routingKey: string, _headers: ReadonlyMap<string, unknown> | null, out: T[]): void {
    this.trie.collect(routingKey, out);
  }
}

/** Every binding has its own rule, so each is tried in turn; rules are compiled once, when bound. */
class HeadersMatcher<T extends { readonly binding: Binding }> implements Matcher<T> {
  private readonly records: T[] = [];
  private readonly rules: HeadersRule[] = [];

  add(record: T): void {
    this.records.push(record);
    this.rules.push(compileHeadersRule(record.binding.arguments));
  }

  remove(record: T): void {
    const index = this.records.indexOf(record);
    if (index < 0) return;
    this.records.splice(index, 1);
    this.rules.splice(index, 1);
  }

  collect(_routingKey: string, headers: ReadonlyMap<string, unknown> | null, out: T[]): void {
    for (let index = 0; index < this.records.length; index++) {
      if (headersMatch(this.rules[index]!, headers)) out.push(this.records[index]!);
    }
  }
}
