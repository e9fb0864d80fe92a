export type PermissionKind = 'configure' | 'write' | 'read';
export const PERMISSION_KINDS: readonly PermissionKind[] = ['configure', 'write', 'read'];

/** Enough for every pattern a broker holds; past it the cache starts over rather than grow without bound. */
const MAX_CACHED = 1024;

/**
 * Permission patterns as RabbitMQ matches them (rabbit_auth_backend_internal, check_resource_access): a regular
 * expression searched anywhere in the resource name, not anchored (`re:run` finds any match), so 'orders' also grants
 * 'old-orders-2'; anchor with ^…$ to mean exactly. The empty pattern grants nothing: RabbitMQ reads '' as '^$', which
 * could only match an empty name, and it checks the default exchange under the name 'amq.default', so no resource it
 * checks has one. Patterns are JavaScript regular expressions, which agree with RabbitMQ's PCRE on the usual forms.
 */
export class PermissionPatterns {
  private readonly compiled = new Map<string, RegExp>();

  matches(pattern: string, resource: string): boolean {
    if (pattern === '') return false;
    let regex = this.compiled.get(pattern);
    if (regex === undefined) {
      if (this.compiled.size >= MAX_CACHED) this.compiled.clear();
      regex = new RegExp(pattern);
      this.compiled.set(pattern, regex);
    }
    return regex.test(resource);
  }
}

/** Why `pattern` does not compile, or null. */
export function compileProblem(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}
