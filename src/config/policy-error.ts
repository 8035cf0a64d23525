/** The error every policy problem is reported with: one message, and each problem on its own. */
export class PolicyError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}
