import type { Obj } from './store.js';

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Obj,
  ) {
    super(message);
  }
  toStatus(): Obj {
    return {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason,
      ...(this.details ? { details: this.details } : {}), code: this.code,
    };
  }
}

export interface GR {
  group: string;
  resource: string;
}

const qual = (gr: GR) => (gr.group ? `${gr.resource}.${gr.group}` : gr.resource);

export const notFound = (gr: GR, name: string) =>
  new ApiError(404, 'NotFound', `${qual(gr)} "${name}" not found`, { name, group: gr.group || undefined, kind: gr.resource });
export const alreadyExists = (gr: GR, name: string) =>
  new ApiError(409, 'AlreadyExists', `${qual(gr)} "${name}" already exists`, { name, group: gr.group || undefined, kind: gr.resource });
export const conflict = (gr: GR, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qual(gr)} "${name}": ${why}`, { name, group: gr.group || undefined, kind: gr.resource });
export const badRequest = (msg: string) => new ApiError(400, 'BadRequest', msg);
export const gone = (msg: string) => new ApiError(410, 'Expired', msg);
export const pathNotFound = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
export const invalid = (kind: string, group: string, name: string, causes: { reason: string; message: string; field: string }[]) => {
  const k = group ? `${kind}.${group}` : kind;
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const msg = `${k} "${name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`}`;
  return new ApiError(422, 'Invalid', msg, { name, group: group || undefined, kind, causes });
};
