/**
 * The parameters of one SQL statement, numbered in the order their names are first used. Parts of a
 * statement written by different modules refer to their parameters by name, so none has to know
 * how many the others use; the values are bound by name too.
 */
export class StatementParams {
  private readonly names: string[] = [];

  /** `$n` for the parameter `name`: the same name, the same number. */
  ref(name: string): string {
    let at = this.names.indexOf(name);
    if (at < 0) at = this.names.push(name) - 1;
    return `$${at + 1}`;
  }

  /** The values in parameter order, each taken from `values` by its name; a missing one throws. */
  values(values: Record<string, unknown>): unknown[] {
    return this.names.map((name) => {
      if (!(name in values)) throw new Error(`no value for the statement parameter "${name}"`);
      return values[name];
    });
  }
}
