// What a page shows about the action it last ran: whether one is running (buttons wait) and,
// when one failed, the backend's message with its fix, shown where the action was.
import { errorText } from "./api";

export class Action {
  busy = $state(false);
  error = $state("");

  /** Runs `work`; returns whether it succeeded. */
  async run(work: () => Promise<unknown>): Promise<boolean> {
    this.error = "";
    this.busy = true;
    try {
      await work();
      return true;
    } catch (e) {
      this.error = errorText(e);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
