import type { Metadata } from "next";
import type { ReactNode } from "react";
import "./globals.css";
import { Nav } from "./nav";

// System fonts only: next/font/google would need the internet at build time.
export const metadata: Metadata = {
  title: "AXion Hub",
  description: "AXion Hub",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <Nav />
        {children}
      </body>
    </html>
  );
}
