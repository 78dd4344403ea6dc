import { AuthForm } from "../auth-form";

export default function SignUp() {
  return (
    <section>
      <h1>Create an account</h1>
      <AuthForm kind="sign-up" />
    </section>
  );
}
