/** The strategy of every CRD-backed kind: its version's structural schema prunes, defaults and validates. */
import { badRequest } from '../errors.js';
import type { Cause, KubeObject } from '../types.js';
import { applyDefaults, prune, toCauses } from './schema.js';
import { GenericStrategy, type WriteContext } from './strategy.js';

export class CustomResourceStrategy extends GenericStrategy {
  override readonly tracksGeneration = true;
  protected override readonly dropsStatusOnCreate = true;

  /** Unknown fields go (400 under fieldValidation=Strict, a warning under Warn), then defaults fill in. */
  protected override normalise(obj: KubeObject, ctx: WriteContext): void {
    const { kind, version } = ctx;
    const pruned: string[] = [];
    prune(obj, version.schema, '', pruned, true);
    if (pruned.length) {
      if (ctx.fieldValidation === 'Strict') {
        throw badRequest(
          `${kind.kind} in version "${version.name}" cannot be handled as a ${kind.kind}: strict decoding error: ${pruned.map((p) => `unknown field "${p}"`).join(', ')}`,
        );
      }
      if (ctx.fieldValidation === 'Warn') for (const p of pruned) ctx.warnings.push(`unknown field "${p}"`);
    }
    applyDefaults(obj, version.schema);
  }

  override validate(obj: KubeObject, ctx: WriteContext): Cause[] {
    const causes = super.validate(obj, ctx);
    const v = ctx.version.validator;
    if (v && !v(obj)) causes.push(...toCauses(v.errors, obj));
    return causes;
  }
}
